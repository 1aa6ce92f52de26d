// GBNF grammars for JSON output: any JSON object, or the JSON described by a JSON Schema (the
// common subset: types, properties/required, items, enum, const, anyOf/oneOf, $ref to $defs,
// string lengths and formats-free patterns are not supported). Output is compact JSON.

type Schema = Record<string, unknown> | boolean;

const PRIMITIVES = String.raw`
ws ::= [ ]?
char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
string ::= "\"" char* "\""
integer ::= "-"? ([0-9] | [1-9] [0-9]{0,15})
number ::= integer ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?
boolean ::= "true" | "false"
null ::= "null"
value ::= object | array | string | number | boolean | null
object ::= "{" ws ( string ws ":" ws value ( ws "," ws string ws ":" ws value )* )? ws "}"
array ::= "[" ws ( value ( ws "," ws value )* )? ws "]"
`.trim();

/** A grammar that accepts one JSON object (response_format json_object). */
export function jsonObjectGrammar(): string {
  return `root ::= object\n${PRIMITIVES}\n`;
}

function literal(value: unknown): string {
  // A JSON literal as a GBNF string literal.
  return JSON.stringify(JSON.stringify(value));
}

/** Converts a JSON Schema into a GBNF grammar whose root is the schema's value. */
export function jsonSchemaGrammar(schema: unknown): string {
  if (typeof schema !== "object" && typeof schema !== "boolean") {
    throw new TypeError("the JSON schema must be an object");
  }
  const rules = new Map<string, string>();
  const root = schema as Schema;
  const definitions = (typeof root === "object" && ((root.$defs ?? root.definitions) as Record<string, Schema> | undefined)) || {};
  let counter = 0;
  const refRules = new Map<string, string>();

  function addRule(body: string, hint: string): string {
    const name = `${hint.replace(/[^a-zA-Z0-9]/g, "-").replace(/^-+|-+$/g, "") || "r"}-${counter++}`;
    rules.set(name, body);
    return name;
  }

  function visit(node: Schema, hint: string): string {
    if (node === true || (typeof node === "object" && Object.keys(node).length === 0)) return "value";
    if (node === false) throw new RangeError("a schema of false accepts nothing");
    const s = node;
    if (typeof s.$ref === "string") {
      const match = /^#\/(?:\$defs|definitions)\/(.+)$/.exec(s.$ref);
      if (!match) throw new RangeError(`unsupported $ref ${s.$ref}: only local #/$defs/... references`);
      const name = match[1]!;
      const existing = refRules.get(name);
      if (existing) return existing;
      const target = definitions[name];
      if (target === undefined) throw new RangeError(`$ref ${s.$ref} names no definition`);
      const ruleName = `ref-${name.replace(/[^a-zA-Z0-9]/g, "-")}`;
      refRules.set(name, ruleName);
      rules.set(ruleName, visit(target, name));
      return ruleName;
    }
    if ("const" in s) return literal(s.const);
    if (Array.isArray(s.enum)) return `( ${s.enum.map(literal).join(" | ")} )`;
    const alternatives = (s.anyOf ?? s.oneOf) as Schema[] | undefined;
    if (Array.isArray(alternatives)) return `( ${alternatives.map((a, i) => visit(a, `${hint}-${i}`)).join(" | ")} )`;
    if (Array.isArray(s.allOf) && s.allOf.length === 1) return visit(s.allOf[0] as Schema, hint);
    const type = s.type;
    if (Array.isArray(type)) return `( ${type.map((t) => visit({ ...s, type: t }, hint)).join(" | ")} )`;
    switch (type) {
      case "string":
        return stringRule(s, hint);
      case "integer":
        return "integer";
      case "number":
        return "number";
      case "boolean":
        return "boolean";
      case "null":
        return "null";
      case "array":
        return arrayRule(s, hint);
      case "object":
        return objectRule(s, hint);
      case undefined:
        if (s.properties !== undefined) return objectRule(s, hint);
        return "value";
      default:
        throw new RangeError(`unsupported JSON schema type ${JSON.stringify(type)}`);
    }
  }

  function stringRule(s: Record<string, unknown>, hint: string): string {
    const min = typeof s.minLength === "number" ? s.minLength : 0;
    const max = typeof s.maxLength === "number" ? s.maxLength : undefined;
    if (min === 0 && max === undefined) return "string";
    const repeat = max === undefined ? `char{${min},}` : `char{${min},${max}}`;
    return addRule(`"\\"" ${repeat} "\\""`, `${hint}-string`);
  }

  function arrayRule(s: Record<string, unknown>, hint: string): string {
    const item = s.items === undefined ? "value" : visit(s.items as Schema, `${hint}-item`);
    const min = typeof s.minItems === "number" ? s.minItems : 0;
    const max = typeof s.maxItems === "number" ? s.maxItems : undefined;
    const tail = `( ws "," ws ${item} )`;
    let body: string;
    if (min === 0) {
      const more = max === undefined ? `${tail}*` : max <= 1 ? "" : `${tail}{0,${max - 1}}`;
      body = max === 0 ? `"[" ws "]"` : `"[" ws ( ${item} ${more} )? ws "]"`;
    } else {
      const more = max === undefined ? `${tail}{${min - 1},}` : `${tail}{${min - 1},${max - 1}}`;
      body = `"[" ws ${item} ${more} ws "]"`;
    }
    return addRule(body, `${hint}-array`);
  }

  function objectRule(s: Record<string, unknown>, hint: string): string {
    const properties = (s.properties ?? {}) as Record<string, Schema>;
    const names = Object.keys(properties);
    if (names.length === 0) return "object";
    const required = new Set(Array.isArray(s.required) ? (s.required as string[]) : []);
    const member = (name: string) => `${literal(name)} ws ":" ws ${visit(properties[name]!, `${hint}-${name}`)}`;
    // Required properties first, in schema order, then each optional one may follow.
    const requiredNames = names.filter((n) => required.has(n));
    const optionalNames = names.filter((n) => !required.has(n));
    let body = requiredNames.map(member).join(` ws "," ws `);
    for (const name of optionalNames) {
      body = body === "" ? `( ${member(name)} )?` : `${body} ( ws "," ws ${member(name)} )?`;
    }
    // With only optional members, a leading comma could follow an absent first member: keep them
    // in order and let each start its own comma only after something was written.
    if (requiredNames.length === 0 && optionalNames.length > 1) {
      const chain = (i: number): string => {
        if (i >= optionalNames.length) return "";
        const rest = chain(i + 1);
        const after = optionalNames.slice(i + 1).map((n) => `( ws "," ws ${member(n)} )?`).join(" ");
        return `( ${member(optionalNames[i]!)} ${after} ${rest ? `| ${rest}` : ""} )`;
      };
      body = `${chain(0)}?`;
    }
    return addRule(`"{" ws ${body} ws "}"`, `${hint}-object`);
  }

  const rootBody = visit(root, "root");
  const lines = [`root ::= ${rootBody}`];
  for (const [name, body] of rules) lines.push(`${name} ::= ${body}`);
  lines.push(PRIMITIVES);
  return lines.join("\n") + "\n";
}
