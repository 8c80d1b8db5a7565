'use strict';
// Test helpers: a real `procwire serve` on a temporary socket.

const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const repoRoot = path.resolve(__dirname, '..', '..', '..');
let tmpDir = null;

function tempDir() {
	if (!tmpDir) {
		tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'procwire-node-'));
		process.on('exit', () => fs.rmSync(tmpDir, { recursive: true, force: true }));
	}
	return tmpDir;
}

// procwireBin returns the server binary: $PROCWIRE_BIN (set by
// .ci/clients/node), or one built once per test file.
function procwireBin() {
	if (process.env.PROCWIRE_BIN) return process.env.PROCWIRE_BIN;
	const bin = path.join(tempDir(), 'procwire');
	if (!fs.existsSync(bin)) {
		execFileSync('go', ['build', '-o', bin, './cmd/procwire'], { cwd: repoRoot, stdio: 'inherit' });
	}
	return bin;
}

// Servers a failed test left running are killed when the test file exits.
const live = new Set();
process.on('exit', () => {
	for (const p of live) {
		try { p.kill('SIGKILL'); } catch (e) { /* already gone */ }
	}
});

let serial = 0;
function socketPath(name) {
	return path.join(tempDir(), `${name || 'ipc'}-${process.pid}-${serial++}.sock`);
}

function sleep(ms) {
	return new Promise((resolve) => setTimeout(resolve, ms));
}

function canConnect(sock) {
	return new Promise((resolve) => {
		const c = net.createConnection(sock);
		c.on('connect', () => { c.destroy(); resolve(true); });
		c.on('error', () => resolve(false));
	});
}

// Server runs `procwire serve --socket PATH` as a child process.
class Server {
	constructor(sock, config) {
		this.socket = sock || socketPath();
		this.config = config || null; // text of a configuration file, if any
		this.proc = null;
		this.stderr = '';
	}

	async start() {
		const args = ['serve', '--socket', this.socket, '--log-level', 'warn'];
		if (this.config) {
			const file = this.socket + '.conf';
			fs.writeFileSync(file, this.config);
			args.push('-c', file);
		}
		const proc = spawn(procwireBin(), args, {
			stdio: ['ignore', 'ignore', 'pipe'],
		});
		this.proc = proc;
		live.add(proc);
		proc.on('exit', () => live.delete(proc));
		proc.stderr.on('data', (b) => { this.stderr += b.toString(); });
		this.exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
		const deadline = Date.now() + 20000;
		while (Date.now() < deadline) {
			if (proc.exitCode !== null) throw new Error('procwire serve exited: ' + this.stderr);
			if (await canConnect(this.socket)) return this;
			await sleep(20);
		}
		throw new Error('procwire serve did not start on ' + this.socket + ': ' + this.stderr);
	}

	// stop sends SIGTERM (a graceful shutdown) and waits for the exit.
	async stop(signal) {
		if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
		this.proc.kill(signal || 'SIGTERM');
		const r = await this.exited;
		this.proc = null;
		return r;
	}
}

async function startServer(sock, config) {
	return new Server(sock, config).start();
}

// memLogger records what the client logs.
function memLogger() {
	const l = { debugs: [], errors: [] };
	l.debug = (level, msg, data) => l.debugs.push({ level, msg, data });
	l.error = (code, msg, data) => l.errors.push({ code, msg, data });
	return l;
}

// waitFor polls fn until it is truthy; the deadline is a safety net only.
async function waitFor(fn, what, ms = 20000) {
	const deadline = Date.now() + ms;
	while (Date.now() < deadline) {
		if (await fn()) return;
		await sleep(10);
	}
	throw new Error('timed out waiting for ' + what);
}

module.exports = { Server, startServer, socketPath, sleep, memLogger, waitFor, procwireBin };
