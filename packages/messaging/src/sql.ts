/** A schema name safe to splice into SQL (we never quote user input into DDL). Throws Error otherwise. */
export function schemaIdent(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid schema name ${JSON.stringify(schema)}: lowercase letters, digits, _`);
  return `"${schema}"`;
}
