// shoal.js: a Node.js HTTP app under shoal, with Node's standard library only (Node 18+).
//
//   const shoal = require('./shoal');
//   shoal.cleanup('database', () => pool.end(), { timeoutMs: 2000 });
//   shoal.serve((req, res) => res.end('hello\n'));
//
// serve() listens on the sockets shoal hands over (LISTEN_FDS: fds 3, 4, ...; without them, on
// PORT or 3000, for development), says it is ready (a line on SHOAL_READY_FD: [app] ready = "fd"),
// and drains on the drain signal (SHOAL_DRAIN_SIGNAL, SIGTERM by default):
//   1. every response carries Connection: close, and the readiness path answers 503 at once
//      (unless a new generation takes over the sockets: the instance as a whole stays ready);
//   2. it keeps serving for the drain delay, so that a load balancer that polls readiness stops
//      sending first: the "drain_delay_ms=N" line shoal writes on SHOAL_CONTROL_FD just before the
//      signal (0 when a new generation takes over the same sockets: nothing to wait for), else
//      SHOAL_DRAIN_DELAY_MS;
//   3. it closes its listeners, then closes keep-alive connections once they are idle, after
//      SHOAL_IDLE_GRACE_MS without a request (a connection that never sent one gets 5 s);
//   4. once every in-flight request is answered, it runs the cleanups (newest first), each with
//      its own timeout; all run even when one fails, and each failure is named;
//   5. it exits 0, or 1 if a cleanup failed. shoal's own deadline ([shutdown] timeout) kills it
//      if it is still running then.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');

const env = process.env;
const number = (name, fallback) => (env[name] !== undefined && env[name] !== '' ? Number(env[name]) : fallback);

const settings = {
  drainDelayMs: number('SHOAL_DRAIN_DELAY_MS', 0),
  idleGraceMs: number('SHOAL_IDLE_GRACE_MS', 250),
  firstRequestMs: 5000, // a connection that has sent nothing yet gets this long to send its request
  drainSignal: env.SHOAL_DRAIN_SIGNAL || 'SIGTERM',
  generation: env.SHOAL_GENERATION || '0',
  worker: env.SHOAL_WORKER_INDEX || '0',
};

const cleanups = [];
let draining = false;
let unready = false; // readiness 503: draining for a shutdown, not for a hand-over

// stdout and stderr are pipes into shoal's log: if the master is gone, a write fails with EPIPE,
// which must not crash the drain that the master's death started.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

function log(text) {
  process.stderr.write(`shoal.js: ${text}\n`);
}

// A named cleanup, run once at the end of the drain with its own timeout.
function cleanup(name, fn, { timeoutMs = 5000 } = {}) {
  cleanups.push({ name, fn, timeoutMs });
}

// The fds shoal handed over: systemd's sd_listen_fds(3) rules (LISTEN_PID must be this process).
function inheritedFds() {
  const count = number('LISTEN_FDS', 0);
  if (!count) return [];
  if (env.LISTEN_PID && Number(env.LISTEN_PID) !== process.pid) {
    log(`LISTEN_PID ${env.LISTEN_PID} is not this process (${process.pid}): not using LISTEN_FDS`);
    return [];
  }
  return Array.from({ length: count }, (_, i) => 3 + i);
}

function sayReady() {
  if (env.SHOAL_READY_FD) {
    fs.writeSync(Number(env.SHOAL_READY_FD), 'READY=1\n');  // the control socket: kept open
  } else if (env.NOTIFY_SOCKET) {
    // Node has no unix datagram sockets: it cannot send READY=1 itself.
    log('NOTIFY_SOCKET is set but Node cannot send datagrams: set [app] ready = "fd" in shoal\'s config');
    process.exit(2);
  }
}

// How long this drain keeps serving: what shoal wrote just before the signal, or, with no line (the
// master is gone, or someone else sent the signal), the shutdown's drain delay.
function drainDelayNow() {
  if (!env.SHOAL_CONTROL_FD) return settings.drainDelayMs;
  try {
    const buf = Buffer.alloc(4096);
    const n = fs.readSync(Number(env.SHOAL_CONTROL_FD), buf, 0, buf.length, null);
    const said = [...buf.toString('latin1', 0, n).matchAll(/drain_delay_ms=(\d+)/g)].pop();
    if (said) return Number(said[1]);
  } catch (err) {
    // EAGAIN (non-blocking, nothing written) or EOF: no word from shoal
  }
  return settings.drainDelayMs;
}

async function runCleanups() {
  let failed = 0;
  for (const { name, fn, timeoutMs } of [...cleanups].reverse()) {
    const started = Date.now();
    let timer;
    try {
      await Promise.race([
        Promise.resolve().then(fn),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      log(`cleanup '${name}' ok in ${Date.now() - started} ms`);
    } catch (err) {
      failed += 1;
      log(`cleanup '${name}' failed: ${err && err.message ? err.message : err}`);
    } finally {
      clearTimeout(timer);
    }
  }
  return failed;
}

// Serves `handler` on every inherited socket. Options: readinessPath ('/readyz'; '' for none).
function serve(handler, { readinessPath = '/readyz' } = {}) {
  const servers = [];
  const inFlight = new Set(); // responses not yet finished
  const lastActive = new Map(); // socket -> when its last request ended (idle keep-alive)
  const fresh = new Set(); // accepted, no request yet: its first may still be on its way

  const onRequest = (req, res) => {
    inFlight.add(res);
    lastActive.delete(req.socket);
    fresh.delete(req.socket);
    res.on('close', () => {
      inFlight.delete(res);
      if (!req.socket.destroyed) lastActive.set(req.socket, Date.now());
    });
    if (draining) res.shouldKeepAlive = false; // Connection: close
    if (readinessPath && req.url === readinessPath) {
      res.writeHead(unready ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(unready ? 'draining\n' : 'ready\n');
      return;
    }
    handler(req, res);
  };

  const fds = inheritedFds();
  const targets = fds.length ? fds.map((fd) => ({ fd })) : [{ port: number('PORT', 3000), host: '127.0.0.1' }];
  let listening = 0;
  for (const target of targets) {
    const server = http.createServer(onRequest);
    server.keepAliveTimeout = 60_000; // shoal's own keepalive_timeout default
    server.on('connection', (socket) => {
      lastActive.set(socket, Date.now());
      fresh.add(socket);
      socket.on('close', () => {
        lastActive.delete(socket);
        fresh.delete(socket);
      });
    });
    server.listen(target, () => {
      if (++listening === targets.length) sayReady();
    });
    servers.push(server);
  }

  async function drain() {
    if (draining) return;
    draining = true;
    const delayMs = drainDelayNow();
    unready = delayMs > 0;
    log(`${settings.drainSignal}: draining (delay ${delayMs} ms, ${inFlight.size} in flight)`);
    for (const res of inFlight) if (!res.headersSent) res.shouldKeepAlive = false;
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    // No new connections; those open finish what they asked, and close once idle. (net.Server's
    // close, not http.Server's: since Node 19 that one also drops idle keep-alive connections at
    // once, racing a client's next request on them; they get the idle grace below instead.)
    const closed = servers.map((server) => new Promise((resolve) => net.Server.prototype.close.call(server, () => resolve())));
    await new Promise((resolve) => {
      const tick = () => {
        const now = Date.now();
        for (const [socket, since] of lastActive)
          if (socket.destroyed) lastActive.delete(socket);
          else if (now - since >= (fresh.has(socket) ? settings.firstRequestMs : settings.idleGraceMs)) socket.destroy();
        if (inFlight.size === 0 && lastActive.size === 0) resolve();
        else setTimeout(tick, Math.max(10, Math.min(50, settings.idleGraceMs)));
      };
      tick();
    });
    await Promise.all(closed);
    const failed = await runCleanups();
    log(failed ? `drained; ${failed} cleanup(s) failed: exit 1` : 'drained, cleanups ok: exit 0');
    process.exit(failed ? 1 : 0);
  }
  process.on(settings.drainSignal, drain);
  return { servers, settings, get draining() { return draining; } };
}

module.exports = { serve, cleanup, settings };
