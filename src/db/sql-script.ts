/**
 * Splits a SQL script into statements on top-level semicolons, honouring
 * single quotes, double quotes, line comments, nested block comments and
 * dollar-quoted bodies.
 * Needed because PGlite's extended-protocol `query` runs one statement at a
 * time, and one migration file must serve both PGlite and Postgres.
 */
export function splitSqlStatements(script: string): string[] {
  const statements: string[] = [];
  let current = "";
  let i = 0;
  while (i < script.length) {
    const ch = script[i]!;
    const rest = script.slice(i);
    if (ch === "-" && script[i + 1] === "-") {
      const end = script.indexOf("\n", i);
      i = end === -1 ? script.length : end + 1;
      current += "\n";
      continue;
    }
    if (ch === "/" && script[i + 1] === "*") {
      // Block comments nest in Postgres; a `;` inside one must not split.
      let depth = 0;
      let j = i;
      while (j < script.length) {
        if (script.startsWith("/*", j)) {
          depth++;
          j += 2;
        } else if (script.startsWith("*/", j)) {
          depth--;
          j += 2;
          if (depth === 0) break;
        } else j++;
      }
      i = j;
      current += " ";
      continue;
    }
    if (ch === "'" || ch === '"') {
      const end = script.indexOf(ch, i + 1);
      const stop = end === -1 ? script.length : end + 1;
      current += script.slice(i, stop);
      i = stop;
      continue;
    }
    const dollar = /^\$[A-Za-z_]*\$/.exec(rest);
    if (dollar) {
      const tag = dollar[0];
      const end = script.indexOf(tag, i + tag.length);
      const stop = end === -1 ? script.length : end + tag.length;
      current += script.slice(i, stop);
      i = stop;
      continue;
    }
    if (ch === ";") {
      if (current.trim() !== "") statements.push(current.trim());
      current = "";
      i++;
      continue;
    }
    current += ch;
    i++;
  }
  if (current.trim() !== "") statements.push(current.trim());
  return statements;
}
