// A plain node:http app under shoal: `shoal -c examples/node/shoal.toml`.
// Every response says which process and generation answered it, so a reload can be watched.
'use strict';
const path = require('node:path');
const shoal = require(path.join(__dirname, '..', '..', 'clients', 'node', 'shoal.js'));

const startDelayMs = Number(process.env.APP_START_DELAY_MS || 0); // a slow start-up, to try a reload on

shoal.cleanup('flush-metrics', async () => {
  await new Promise((resolve) => setTimeout(resolve, 20)); // where a real app flushes or closes a pool
});
if (process.env.APP_FAILING_CLEANUP === '1')
  shoal.cleanup('broken-cleanup', () => { throw new Error('the database was already gone'); });

setTimeout(() => {
  shoal.serve((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const reply = () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`pid=${process.pid} generation=${shoal.settings.generation} path=${url.pathname}\n`);
    };
    if (url.pathname === '/slow') setTimeout(reply, Number(url.searchParams.get('ms') || 1000));
    else reply();
  });
}, startDelayMs);
