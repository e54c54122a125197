import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultMigrationsDir } from "../../src/db/migrate.js";
import { splitSqlStatements } from "../../src/db/sql-script.js";

describe("splitSqlStatements", () => {
  it("splits on top-level semicolons and trims", () => {
    expect(splitSqlStatements("select 1;\n  select 2 ;\n\n")).toEqual(["select 1", "select 2"]);
  });

  it("keeps a final statement without a semicolon", () => {
    expect(splitSqlStatements("select 1; select 2")).toEqual(["select 1", "select 2"]);
  });

  it("returns nothing for whitespace and comments only", () => {
    expect(splitSqlStatements("  -- just a comment; really\n /* and; this */ \n;;")).toEqual([]);
  });

  it("ignores semicolons in single-quoted strings, including doubled quotes", () => {
    expect(splitSqlStatements("insert into t values ('a;b', 'it''s; fine'); select 1")).toEqual([
      "insert into t values ('a;b', 'it''s; fine')",
      "select 1",
    ]);
  });

  it("ignores semicolons in double-quoted identifiers", () => {
    expect(splitSqlStatements('create table "a;b" (x int); select 1')).toEqual([
      'create table "a;b" (x int)',
      "select 1",
    ]);
  });

  it("ignores semicolons in line comments", () => {
    expect(splitSqlStatements("select 1 -- one; two\n; select 2")).toEqual(["select 1", "select 2"]);
  });

  it("ignores semicolons in nested block comments", () => {
    expect(splitSqlStatements("select /* a; /* b; */ c; */ 1; select 2")).toEqual(["select   1", "select 2"]);
  });

  it("keeps dollar-quoted function bodies whole", () => {
    const fn = "create function f() returns trigger language plpgsql as $fn$ begin raise exception 'x;y'; end $fn$";
    expect(splitSqlStatements(`${fn}; select 1`)).toEqual([fn, "select 1"]);
  });

  it("keeps anonymous dollar quotes whole", () => {
    expect(splitSqlStatements("do $$ begin perform 1; end $$; select 2")).toEqual([
      "do $$ begin perform 1; end $$",
      "select 2",
    ]);
  });

  it("does not mistake positional parameters for dollar quotes", () => {
    expect(splitSqlStatements("select $1; select $2")).toEqual(["select $1", "select $2"]);
  });

  it("splits every shipped migration into statements without stray comment text", () => {
    const dir = defaultMigrationsDir();
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql"))) {
      const statements = splitSqlStatements(readFileSync(join(dir, file), "utf8"));
      expect(statements.length, file).toBeGreaterThan(0);
      for (const s of statements) expect(s, file).toMatch(/^(create|drop|alter|insert|update|delete|do|comment|select|with)\b/i);
    }
  });
});
