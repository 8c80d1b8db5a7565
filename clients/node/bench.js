'use strict';
// Rough speed check of IPCClient against procwire serve:
//   node bench.js [SOCKET]
// Without SOCKET it starts its own server (PROCWIRE_BIN or a go build).
// Prints sequential round trips per payload size and pipelined echo throughput.

const IPCClient = require('.');
const { startServer } = require('./test/helpers');

async function timeIt(ms, fn) {
	const t0 = process.hrtime.bigint();
	let n = 0;
	while (Number(process.hrtime.bigint() - t0) / 1e6 < ms) {
		n += await fn();
	}
	return { n, secs: Number(process.hrtime.bigint() - t0) / 1e9 };
}

async function main() {
	let server = null;
	let sock = process.argv[2];
	if (!sock) {
		server = await startServer();
		sock = server.socket;
	}
	const c = new IPCClient(sock, null, {});
	await c.connect();
	for (const size of [1024, 5 * 1024, 10 * 1024, 20 * 1024, 100 * 1024]) {
		const payload = { s: 'x'.repeat(size) };
		const { n, secs } = await timeIt(1000, async () => { await c.send('/ipcserver/test/echo', payload); return 1; });
		console.log(`sequential echo ${String(size / 1024).padStart(3)}K: ${(secs / n * 1e6).toFixed(1)} µs/req, ${Math.round(n / secs)} req/s`);
	}
	const small = { s: 'y'.repeat(100) };
	for (const inFlight of [64, 1024]) {
		const { n, secs } = await timeIt(2000, async () => {
			const ps = [];
			for (let i = 0; i < inFlight; i++) ps.push(c.send('/ipcserver/test/echo', small));
			await Promise.all(ps);
			return inFlight;
		});
		console.log(`pipelined echo 100 B, ${inFlight} in flight: ${Math.round(n / secs)} req/s`);
	}
	await c.close();
	if (server) await server.stop();
}

main().catch((e) => { console.error(e); process.exit(1); });
