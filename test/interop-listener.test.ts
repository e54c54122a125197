import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Listener } from "../src/server/listener.js";

// The one-port listener on its own: it sniffs each cleartext connection's
// first bytes to pick HTTP/1.1 or h2c, and closes connections that stay silent.

const SNIFF_TIMEOUT_MS = 300;
let listener: Listener;

beforeAll(async () => {
  listener = new Listener(
    { host: "127.0.0.1", port: 0, sniffTimeoutMs: SNIFF_TIMEOUT_MS },
    (req, res) => res.end(`ok ${req.httpVersion} ${req.url}`),
  );
  await listener.start();
});
afterAll(() => listener?.stop(500));

function rawSocket(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(listener.port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

/** Resolves with what the server sent once it closes the connection (bounded). */
function untilClosed(s: net.Socket, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = "";
    const timer = setTimeout(() => reject(new Error("connection still open")), timeoutMs);
    s.on("data", (d: Buffer) => {
      received += d.toString();
    });
    s.once("close", () => {
      clearTimeout(timer);
      resolve(received);
    });
  });
}

describe("Listener", () => {
  it("serves HTTP/1.1", async () => {
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get(`http://127.0.0.1:${listener.port}/h1`, (res) => {
          let data = "";
          res.on("data", (d) => {
            data += d;
          });
          res.on("end", () => resolve(data));
        })
        .on("error", reject);
    });
    expect(body).toBe("ok 1.1 /h1");
  });

  it("serves h2c with prior knowledge on the same port", async () => {
    const session = http2.connect(`http://127.0.0.1:${listener.port}`);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ":path": "/h2" });
        let data = "";
        req.on("data", (d) => {
          data += d;
        });
        req.on("end", () => resolve(data));
        req.on("error", reject);
      });
      expect(body).toBe("ok 2.0 /h2");
    } finally {
      session.close();
    }
  });

  it("routes a request whose first bytes arrive one at a time", async () => {
    const s = await rawSocket();
    s.setNoDelay(true);
    const closed = untilClosed(s);
    for (const part of ["G", "E", "T /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]) {
      await new Promise<void>((resolve) => s.write(part, () => resolve()));
    }
    const response = await closed;
    expect(response).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(response).toContain("ok 1.1 /slow");
  });

  it("closes a connection that sends nothing", async () => {
    const s = await rawSocket();
    const started = Date.now();
    expect(await untilClosed(s)).toBe("");
    expect(Date.now() - started).toBeGreaterThanOrEqual(SNIFF_TIMEOUT_MS - 50);
  });

  it("does not apply the sniff timeout once the protocol is known", async () => {
    const s = await rawSocket();
    const responses: string[] = [];
    s.on("data", (d: Buffer) => responses.push(d.toString()));
    const ask = (path: string, close = false) =>
      new Promise<void>((resolve) => {
        s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n${close ? "Connection: close\r\n" : ""}\r\n`, () => resolve());
      });
    const closed = untilClosed(s);
    await ask("/one");
    // Deliberately idle past the sniff timeout (the behaviour under test).
    await delay(SNIFF_TIMEOUT_MS * 2);
    expect(s.destroyed).toBe(false);
    await ask("/two", true);
    await closed;
    expect(responses.join("")).toContain("ok 1.1 /one");
    expect(responses.join("")).toContain("ok 1.1 /two");
  });
});
