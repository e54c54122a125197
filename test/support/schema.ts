import { type Kysely, sql } from "kysely";

/**
 * A comparable description of the public schema: columns, indexes, triggers,
 * constraints and functions. Two equal snapshots mean the same schema.
 */
export async function schemaSnapshot(db: Kysely<unknown>): Promise<Record<string, string[]>> {
  const rows = async (query: ReturnType<typeof sql<{ d: string }>>) =>
    (await query.execute(db)).rows.map((r) => r.d);
  return {
    columns: await rows(sql<{ d: string }>`
      select table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') as d
      from information_schema.columns where table_schema = 'public' order by table_name, column_name`),
    indexes: await rows(sql<{ d: string }>`
      select indexdef as d from pg_indexes where schemaname = 'public' order by indexname`),
    constraints: await rows(sql<{ d: string }>`
      select conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) as d
      from pg_constraint where connamespace = 'public'::regnamespace order by 1`),
    triggers: await rows(sql<{ d: string }>`
      select tgrelid::regclass::text || ' ' || tgname as d from pg_trigger where not tgisinternal order by 1`),
    functions: await rows(sql<{ d: string }>`
      select p.proname || ' ' || md5(p.prosrc) as d from pg_proc p
      where p.pronamespace = 'public'::regnamespace order by 1`),
  };
}

/** Table names in the public schema. */
export async function tableNames(db: Kysely<unknown>): Promise<string[]> {
  const { rows } = await sql<{ table_name: string }>`
    select table_name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`.execute(db);
  return rows.map((r) => r.table_name);
}
