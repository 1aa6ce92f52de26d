// Flag parsing for the CLI: each command declares its options once, and the same table drives
// parsing (node:util parseArgs, strict), value checks that name the flag, and --help.
import { parseArgs } from "node:util";

/** A mistake in the command line: exit code 2 and a pointer to --help. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** Placeholder for the value in --help, e.g. "N". */
  value?: string;
  help: string;
}

export type OptionSpecs = Record<string, OptionSpec>;

export interface CommandSpec {
  name: string;
  /** The synopsis after "llama-napi ", e.g. "complete -m MODEL -p PROMPT [options]". */
  usage: string;
  /** One line for the command list. */
  brief: string;
  /** The description at the top of --help. */
  summary: string;
  /** Option groups in the order --help lists them. */
  groups: Array<{ title: string; options: OptionSpecs }>;
  /** Most positional arguments accepted. */
  maxPositionals: number;
  /** Extra text after the options in --help. */
  notes?: string;
}

export const helpOption: OptionSpecs = { help: { type: "boolean", short: "h", help: "show this help" } };

export function helpText(spec: CommandSpec): string {
  const lines = [`Usage: llama-napi ${spec.usage}`, "", spec.summary];
  for (const group of spec.groups) {
    lines.push("", `${group.title}:`);
    const rows = Object.entries(group.options).map(([name, o]) => {
      const flag = `${o.short ? `-${o.short}, ` : "    "}--${name}${o.value ? ` ${o.value}` : ""}`;
      return [flag, o.help + (o.multiple ? " (repeatable)" : "")] as const;
    });
    const width = Math.max(...rows.map(([flag]) => flag.length));
    for (const [flag, help] of rows) lines.push(`  ${flag.padEnd(width)}  ${help}`);
  }
  if (spec.notes) lines.push("", spec.notes);
  return lines.join("\n") + "\n";
}

interface NumberBounds {
  min?: number;
  max?: number;
}

/** Parsed flags of one command, with typed getters that reject bad values as usage errors. */
export class Flags {
  constructor(
    private readonly values: Record<string, string | boolean | Array<string | boolean> | undefined>,
    readonly positionals: string[],
  ) {}

  has(name: string): boolean {
    return this.values[name] !== undefined;
  }

  bool(name: string): boolean {
    return this.values[name] === true;
  }

  string(name: string): string | undefined {
    const value = this.values[name];
    return typeof value === "string" ? value : undefined;
  }

  list(name: string): string[] {
    const value = this.values[name];
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
  }

  number(name: string, bounds: NumberBounds = {}): number | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    const value = text.trim() === "" ? NaN : Number(text);
    if (!Number.isFinite(value)) throw new UsageError(`--${name} needs a number, got ${JSON.stringify(text)}`);
    return checkBounds(name, value, bounds);
  }

  int(name: string, bounds: NumberBounds = {}): number | undefined {
    const value = this.number(name, bounds);
    if (value !== undefined && !Number.isInteger(value)) throw new UsageError(`--${name} needs a whole number, got ${value}`);
    return value;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[]): T | undefined {
    const value = this.string(name);
    if (value !== undefined && !allowed.includes(value as T)) {
      throw new UsageError(`--${name} must be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
    }
    return value as T | undefined;
  }

  /** A string flag the command cannot do without. */
  required(name: string): string {
    const value = this.string(name);
    if (value === undefined) throw new UsageError(`--${name} is required`);
    return value;
  }
}

function checkBounds(name: string, value: number, bounds: NumberBounds): number {
  if (bounds.min !== undefined && value < bounds.min) throw new UsageError(`--${name} must be at least ${bounds.min}, got ${value}`);
  if (bounds.max !== undefined && value > bounds.max) throw new UsageError(`--${name} must be at most ${bounds.max}, got ${value}`);
  return value;
}

/** Parses argv (without the command name) by the command's options; unknown flags are usage errors. */
export function parseCommand(spec: CommandSpec, argv: string[]): Flags {
  const options = Object.assign({}, ...spec.groups.map((g) => g.options)) as OptionSpecs;
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.entries(options).map(([name, o]) => [
          name,
          { type: o.type, ...(o.short && { short: o.short }), ...(o.multiple && { multiple: true }) },
        ]),
      ),
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]!.replace(/\. To specify a positional argument.*$/, ""));
  }
  if (parsed.values.help === true) return new Flags(parsed.values, parsed.positionals);
  if (parsed.positionals.length > spec.maxPositionals) {
    const extra = parsed.positionals[spec.maxPositionals]!;
    throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`);
  }
  return new Flags(parsed.values, parsed.positionals);
}
