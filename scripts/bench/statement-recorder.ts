import { createServer, type Socket, connect as tcpConnect } from "node:net";

/** A statement the server sent, with the parameters of its latest execution (text format; null for NULL). */
export interface RecordedStatement {
  readonly sql: string;
  readonly parameters: readonly (string | null)[];
}

/**
 * A TCP relay in front of Postgres that reads the frontend protocol going
 * through it and records each statement the server executes (Parse names its
 * SQL, Bind its parameters; a simple Query has none), so the benchmark can
 * EXPLAIN exactly what the server runs without knowing its code. Plaintext
 * connections only (as to the machine's Postgres): TLS could not be read.
 */
export async function startStatementRecorder(databaseUrl: string) {
  const target = new URL(databaseUrl);
  const recorded = new Map<string, RecordedStatement>();
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = tcpConnect({ host: target.hostname, port: Number(target.port || 5432) });
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from);
      from.on("close", () => sockets.delete(from)).on("error", () => to.destroy());
      from.pipe(to);
    }
    observe(client, (sql, parameters) => recorded.set(sql, { sql, parameters }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = new URL(databaseUrl);
  url.host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    /** The same database, through the recorder. */
    url: url.toString(),
    /** Forgets what was recorded so far (statements prepared before stay known). */
    clear: () => recorded.clear(),
    /** The distinct statements executed since the last `clear()`. */
    statements: () => [...recorded.values()],
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Calls `record` for each statement executed on the client connection `client`. */
function observe(client: Socket, record: (sql: string, parameters: (string | null)[]) => void): void {
  let buffer = Buffer.alloc(0);
  let started = false;
  // Prepared statement name → SQL, on this connection ("" is the unnamed one).
  const prepared = new Map<string, string>();
  client.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      if (!started) {
        // The startup message has no type byte: [length][protocol][parameters].
        if (buffer.length < 4 || buffer.length < buffer.readInt32BE(0)) return;
        buffer = buffer.subarray(buffer.readInt32BE(0));
        started = true;
        continue;
      }
      if (buffer.length < 5 || buffer.length < 1 + buffer.readInt32BE(1)) return;
      const end = 1 + buffer.readInt32BE(1);
      const [type, body] = [String.fromCharCode(buffer[0] as number), buffer.subarray(5, end)];
      buffer = buffer.subarray(end);
      let offset = 0;
      const cstring = () => {
        const stop = body.indexOf(0, offset);
        const text = body.toString("utf8", offset, stop);
        offset = stop + 1;
        return text;
      };
      if (type === "Q") record(cstring(), []);
      else if (type === "P") prepared.set(cstring(), cstring());
      else if (type === "B") {
        cstring(); // portal
        const sql = prepared.get(cstring());
        offset += 2 + 2 * body.readInt16BE(offset); // parameter format codes
        const count = body.readInt16BE(offset);
        offset += 2;
        const parameters: (string | null)[] = [];
        for (let n = 0; n < count; n++) {
          const length = body.readInt32BE(offset);
          parameters.push(length < 0 ? null : body.toString("utf8", offset + 4, offset + 4 + length));
          offset += 4 + Math.max(length, 0);
        }
        if (sql !== undefined) record(sql, parameters);
      }
    }
  });
}
