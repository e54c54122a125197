import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";

/** A statement the server sent, with the parameters of its latest execution (text format; null for NULL). */
export interface RecordedStatement {
  readonly sql: string;
  readonly parameters: readonly (string | null)[];
}

/** The SSLRequest code a client may send before its startup message (Postgres protocol). */
const SSL_REQUEST = 80877103;

/**
 * A TCP relay in front of Postgres that reads the frontend protocol going
 * through it and records each statement the server executes (Parse names its
 * SQL, Bind its parameters; a simple Query has none), so the benchmark can
 * EXPLAIN exactly what the server runs without knowing its code.
 */
export class StatementRecorder {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #recorded = new Map<string, RecordedStatement>();
  #port = 0;

  private constructor(target: { host: string; port: number }) {
    this.#server = createServer((client) => {
      const upstream = tcpConnect(target);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on("close", () => this.#sockets.delete(s));
        s.on("error", () => (s === client ? upstream : client).destroy());
      }
      client.pipe(upstream).on("error", () => client.destroy());
      upstream.pipe(client).on("error", () => upstream.destroy());
      this.#observe(client);
    });
  }

  /** Starts a recorder on 127.0.0.1 in front of `databaseUrl`; `url` is the same database through it. */
  static async start(databaseUrl: string): Promise<{ recorder: StatementRecorder; url: string }> {
    const target = new URL(databaseUrl);
    const recorder = new StatementRecorder({ host: target.hostname, port: Number(target.port || 5432) });
    await new Promise<void>((resolve) => recorder.#server.listen(0, "127.0.0.1", resolve));
    const address = recorder.#server.address();
    recorder.#port = typeof address === "object" && address !== null ? address.port : 0;
    const url = new URL(databaseUrl);
    url.host = `127.0.0.1:${recorder.#port}`;
    return { recorder, url: url.toString() };
  }

  /** Forgets what was recorded so far (statements prepared before stay known). */
  clear(): void {
    this.#recorded.clear();
  }

  /** The distinct statements executed since the last `clear()`. */
  statements(): RecordedStatement[] {
    return [...this.#recorded.values()];
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #observe(client: Socket): void {
    let buffer = Buffer.alloc(0);
    let started = false;
    // Prepared statement name → SQL, on this connection ("" is the unnamed one).
    const prepared = new Map<string, string>();
    client.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!started) {
          // Untyped: [length][code]; an SSLRequest comes before the startup message.
          if (buffer.length < 8 || buffer.length < buffer.readInt32BE(0)) return;
          started = buffer.readInt32BE(4) !== SSL_REQUEST;
          buffer = buffer.subarray(buffer.readInt32BE(0));
          continue;
        }
        if (buffer.length < 5 || buffer.length < 1 + buffer.readInt32BE(1)) return;
        const end = 1 + buffer.readInt32BE(1);
        this.#message(String.fromCharCode(buffer[0] as number), buffer.subarray(5, end), prepared);
        buffer = buffer.subarray(end);
      }
    });
  }

  #message(type: string, body: Buffer, prepared: Map<string, string>): void {
    let offset = 0;
    const cstring = () => {
      const end = body.indexOf(0, offset);
      const text = body.toString("utf8", offset, end);
      offset = end + 1;
      return text;
    };
    if (type === "Q") this.#record(cstring(), []);
    else if (type === "P") {
      const name = cstring();
      prepared.set(name, cstring());
    } else if (type === "B") {
      cstring(); // portal
      const sql = prepared.get(cstring());
      offset += 2 + 2 * body.readInt16BE(offset); // parameter format codes
      const count = body.readInt16BE(offset);
      offset += 2;
      const parameters: (string | null)[] = [];
      for (let n = 0; n < count; n++) {
        const length = body.readInt32BE(offset);
        offset += 4;
        parameters.push(length < 0 ? null : body.toString("utf8", offset, offset + length));
        offset += Math.max(length, 0);
      }
      if (sql !== undefined) this.#record(sql, parameters);
    }
  }

  #record(sql: string, parameters: readonly (string | null)[]): void {
    this.#recorded.set(sql, { sql, parameters });
  }
}
