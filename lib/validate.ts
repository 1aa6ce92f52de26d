// Argument checks with messages that name the argument: TypeError for a wrong type, RangeError for
// a value out of range. The addon re-checks only what would otherwise crash.

interface NumberBounds {
  min?: number;
  max?: number;
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === "number" && Number.isNaN(value)) return "NaN";
  if (typeof value === "string") return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "..." : value)}`;
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `${typeof value} ${String(value)}`;
}

function checkBounds(name: string, value: number, bounds: NumberBounds): void {
  if (bounds.min !== undefined && value < bounds.min) {
    throw new RangeError(`${name} must be >= ${bounds.min}, got ${value}`);
  }
  if (bounds.max !== undefined && value > bounds.max) {
    throw new RangeError(`${name} must be <= ${bounds.max}, got ${value}`);
  }
}

export function expectNumber(name: string, value: unknown, bounds: NumberBounds = {}): number {
  if (typeof value !== "number") throw new TypeError(`${name} must be a number, got ${describe(value)}`);
  if (!Number.isFinite(value)) throw new RangeError(`${name} must be a finite number, got ${value}`);
  checkBounds(name, value, bounds);
  return value;
}

export function expectInteger(name: string, value: unknown, bounds: NumberBounds = {}): number {
  if (typeof value !== "number") throw new TypeError(`${name} must be an integer, got ${describe(value)}`);
  if (!Number.isInteger(value)) throw new RangeError(`${name} must be an integer, got ${value}`);
  checkBounds(name, value, { min: bounds.min ?? Number.MIN_SAFE_INTEGER, max: bounds.max ?? Number.MAX_SAFE_INTEGER });
  return value;
}

export function expectBoolean(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw new TypeError(`${name} must be a boolean, got ${describe(value)}`);
  return value;
}

export function expectString(name: string, value: unknown): string {
  if (typeof value !== "string") throw new TypeError(`${name} must be a string, got ${describe(value)}`);
  return value;
}

export function expectFunction<T extends (...args: never[]) => unknown>(name: string, value: unknown): T {
  if (typeof value !== "function") throw new TypeError(`${name} must be a function, got ${describe(value)}`);
  return value as T;
}

export function expectObject(name: string, value: unknown): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`${name} must be an object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

export function expectSignal(name: string, value: unknown): AbortSignal {
  if (!(value instanceof AbortSignal)) throw new TypeError(`${name} must be an AbortSignal, got ${describe(value)}`);
  return value;
}

/**
 * One of the library's classes (LlamaModel, LlamaContext, LlamaSampler), recognised by a member
 * only its instances have: an instanceof check would make the modules import each other.
 */
export function expectHandle(name: string, value: unknown, className: string, member: string): void {
  if (typeof value !== "object" || value === null || !(member in value)) {
    throw new TypeError(`${name} must be a ${className}, got ${describe(value)}`);
  }
}

/** Checks each option that is present; `checks` maps option names to their checker. */
export function checkOptions<T extends object>(
  what: string,
  options: unknown,
  checks: { [K in keyof T]-?: (name: string, value: unknown) => unknown },
): T {
  if (options === undefined) return {} as T;
  const object = expectObject(what, options);
  for (const key of Object.keys(object)) {
    const check = (checks as Record<string, (name: string, value: unknown) => unknown>)[key];
    if (check === undefined) throw new TypeError(`${what}.${key} is not a known option`);
    if (object[key] !== undefined) check(`${what}.${key}`, object[key]);
  }
  return object as T;
}

/** Token ids: an Int32Array, or an array of integers, copied into an Int32Array. */
export function toTokenArray(name: string, value: unknown): Int32Array {
  if (value instanceof Int32Array) return value;
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    const list = value as ArrayLike<unknown>;
    const out = new Int32Array(list.length);
    for (let i = 0; i < list.length; i++) out[i] = expectInteger(`${name}[${i}]`, list[i], { min: 0, max: 0x7fffffff });
    return out;
  }
  throw new TypeError(`${name} must be an Int32Array or an array of token ids, got ${describe(value)}`);
}

export const integer =
  (bounds: NumberBounds = {}) =>
  (name: string, value: unknown) =>
    expectInteger(name, value, bounds);
export const number =
  (bounds: NumberBounds = {}) =>
  (name: string, value: unknown) =>
    expectNumber(name, value, bounds);
export const boolean = (name: string, value: unknown) => expectBoolean(name, value);
export const string = (name: string, value: unknown) => expectString(name, value);
export const signal = (name: string, value: unknown) => expectSignal(name, value);
export const func = (name: string, value: unknown) => expectFunction(name, value);
export const oneOf =
  <T extends string | number | boolean>(...allowed: T[]) =>
  (name: string, value: unknown) => {
    if (!allowed.includes(value as T)) {
      throw new RangeError(`${name} must be one of ${allowed.map((v) => JSON.stringify(v)).join(", ")}, got ${describe(value)}`);
    }
    return value as T;
  };

/**
 * Reads an option that also has an older name (`threads` for `nThreads`): the alias counts as the
 * option, and both given with different values is a TypeError. Returns the options with `name` set.
 */
export function withAlias<T extends object>(what: string, options: T, name: keyof T & string, alias: keyof T & string): T {
  const value = options[name];
  const aliased = options[alias];
  if (aliased === undefined) return options;
  if (value !== undefined && value !== aliased) {
    throw new TypeError(`${what}.${name} and its alias ${what}.${alias} differ (${String(value)} and ${String(aliased)}): pass ${name} only`);
  }
  return { ...options, [name]: aliased };
}
