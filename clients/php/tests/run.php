<?php
// PixlIPCClient tests against a real `procwire serve`.
// Usage: php tests/run.php [name-filter]   (PROCWIRE_BIN=path skips the go build)
// The last line printed is "N passed, N failed"; the exit status is 1 on failure.

require_once __DIR__ . '/lib.php';

// Any PHP warning or notice is a test failure (pixl-ipc's client raised
// "Undefined array key" warnings for replies without data).
set_error_handler(function ($no, $str, $file, $line) {
	if (!(error_reporting() & $no)) {
		return false; // silenced with @
	}
	throw new ErrorException($str, 0, $no, $file, $line);
});

$server = (new Server())->start();
$t = new Runner();

function client($opts = null)
{
	global $server;
	return new PixlIPCClient($server->socket, $opts);
}

$t->add('echo round trip keeps values, types and key order', function () {
	$c = client();
	$req = array('z' => 1, 'a' => 'two', 'm' => array('y' => true, 'b' => null), 'list' => array(1, 2.5, -3), 'url' => 'http://x/y?q=1&r=<2>');
	check_same($req, $c->send('/ipcserver/test/echo', $req), 'echo');
	$empty = array();
	check_same(array(), $c->send('/ipcserver/test/echo', $empty), 'empty array');
	$obj = new stdClass();
	$obj->k = 'v';
	check_same(array('k' => 'v'), $c->send('/ipcserver/test/echo/with/prefix', $obj), 'object');
	$c->close();
});

$t->add('echo of unicode', function () {
	$c = client();
	$req = array('fr' => 'héllo wörld', 'ja' => '日本語のテキスト', 'emoji' => '😀 𝄞', 'sep' => "a\u{2028}b\u{2029}", 'ctl' => "t\tn\nr\r\x01", 'q' => '"\\/');
	check_same($req, $c->send('/ipcserver/test/echo', $req), 'unicode echo');
	$raw = array('s' => 'é😀');
	check_same($raw, $c->send('/ipcserver/test/echo', $raw), 'again on the same connection');
});

$t->add('echo of 1 MB payloads', function () {
	$c = client(array('requestTimeout' => 10000));
	$big = array('s' => str_repeat('x', 1000 * 1000));
	check_same($big, $c->send('/ipcserver/test/echo', $big), '1 MB ascii');
	$uni = array('s' => str_repeat('é😀', 200 * 1000)); // json_encode makes ~3.6 MB of \u escapes
	check_same($uni, $c->send('/ipcserver/test/echo', $uni), '1.2 MB unicode');
	$many = array();
	for ($i = 0; $i < 20000; $i++) {
		$many['k' . $i] = str_repeat('v', 40);
	}
	check_same($many, $c->send('/ipcserver/test/echo', $many), '20000 keys');
});

$t->add('no_handler_found comes back as data', function () {
	$c = client();
	$req = array();
	check_same(array('code' => 'no_handler_found', 'message' => 'No handler found for /no/such/uri'), $c->send('/no/such/uri', $req), 'reply');
});

$t->add('no_uri returns null without a warning', function () {
	$c = client();
	$req = array('a' => 1);
	check_same(null, $c->send('', $req), 'reply');
	// The connection is still in step.
	check_same($req, $c->send('/ipcserver/test/echo', $req), 'echo after no_uri');
});

$t->add('a request that is not an array or object throws 5002', function () {
	$c = client();
	foreach (array('str', 42, 1.5, true, null) as $bad) {
		check_throws(PixlIPCClient::E_BAD_REQUEST_TYPE, function () use ($c, $bad) {
			$c->send('/ipcserver/test/echo', $bad);
		}, 'send(' . var_export($bad, true) . ')');
	}
	$ok = array(1);
	check_same($ok, $c->send('/ipcserver/test/echo', $ok), 'still usable');
});

$t->add('delay reply, and a read timeout returns false; the late reply is discarded', function () {
	$c = client(array('requestTimeout' => 5000));
	$d = array('delay' => 30);
	check_same(array('delay' => 30), $c->send('/ipcserver/test/delay', $d), 'delay 30');
	$none = array();
	check_same(array('delay' => 0), $c->send('/ipcserver/test/delay', $none), 'delay without value');

	$c = client(array('requestTimeout' => 150));
	$slow = array('delay' => 500);
	$t0 = microtime(true);
	check_same(false, $c->send('/ipcserver/test/delay', $slow), 'timed out send');
	check(microtime(true) - $t0 < 5, 'timeout took too long');
	// An answer that comes before the stale one.
	$e = array('n' => 1);
	check_same($e, $c->send('/ipcserver/test/echo', $e), 'echo right after the timeout');
	usleep(600 * 1000);
	// Now the stale delay reply is waiting in the socket first.
	$e = array('n' => 2);
	check_same($e, $c->send('/ipcserver/test/echo', $e), 'echo after the late reply arrived');
});

$t->add('many sequential requests on one connection', function () {
	$c = client();
	for ($i = 0; $i < 2000; $i++) {
		$r = array('i' => $i);
		$got = $c->send('/ipcserver/test/echo', $r);
		if ($got !== $r) {
			check_same($r, $got, "request $i");
		}
	}
	$s = array();
	$st = $c->send('/ipcserver/stats', $s);
	foreach (array('connections', 'handlers', 'requests', 'clientOpen', 'clientClose', 'maxConnections', 'duration', 'slowResponses', 'streamBackpressure') as $k) {
		check(array_key_exists($k, $st), "stats lacks $k");
	}
});

$t->add('connect failures throw 5001: no file, stale socket file', function () {
	$c = new PixlIPCClient(TestDir::socket('missing'));
	check_throws(PixlIPCClient::E_SOCKET_CONNECT, function () use ($c) {
		$c->connect();
	}, 'connect');
	$r = array();
	check_throws(PixlIPCClient::E_SOCKET_CONNECT, function () use ($c, &$r) {
		$c->send('/ipcserver/test/echo', $r);
	}, 'send auto-connects');

	$stale = TestDir::socket('stale');
	$srv = stream_socket_server('unix://' . $stale);
	fclose($srv); // the file stays; nobody listens
	check(file_exists($stale), 'stale socket file exists');
	$c = new PixlIPCClient($stale);
	check_throws(PixlIPCClient::E_SOCKET_CONNECT, function () use ($c, &$r) {
		$c->send('/ipcserver/test/echo', $r);
	}, 'send to a stale socket');
	@unlink($stale);
});

$t->add('close() then send() reconnects', function () {
	$c = client();
	$r = array('x' => 1);
	check_same($r, $c->send('/ipcserver/test/echo', $r), 'first');
	check($c->isConnected(), 'connected after send');
	$c->close();
	check(!$c->isConnected(), 'not connected after close');
	$c->close(); // twice is fine
	check_same($r, $c->send('/ipcserver/test/echo', $r), 'after close');
	check($c->isConnected(), 'connected again');
});

$t->add('graceful shutdown mid-session: reply in flight arrives, then a clean 5005, then reconnect after restart', function () {
	$srv = (new Server())->start();
	$c = new PixlIPCClient($srv->socket, array('requestTimeout' => 10000));
	$e = array('before' => 1);
	check_same($e, $c->send('/ipcserver/test/echo', $e), 'before');
	$srv->signalLater(15, 0.2);
	$d = array('delay' => 600);
	check_same(array('delay' => 600), $c->send('/ipcserver/test/delay', $d), 'request in flight at SIGTERM');
	// The server has half-closed: the next send reads a clean end of
	// stream, not a reset and not a write error.
	$ex = check_throws(PixlIPCClient::E_SERVER_CLOSE, function () use ($c, $e) {
		$c->send('/ipcserver/test/echo', $e);
	}, 'send after the server half-closed');
	check(strpos($ex->getMessage(), 'Server closed the connection') === 0, 'message: ' . $ex->getMessage());
	// PHP's streams report a reset (ECONNRESET) as EOF too, so "clean" is
	// checked where it can be: the Node suite tells the two apart.
	check(!$c->isConnected(), 'connection dropped after 5005');
	$srv->waitExit();
	check_throws(PixlIPCClient::E_SOCKET_CONNECT, function () use ($c, $e) {
		$c->send('/ipcserver/test/echo', $e);
	}, 'send while the server is down');
	$srv->start();
	check_same($e, $c->send('/ipcserver/test/echo', $e), 'after restart');
	$c->close();
	$srv->stop();
});

$t->add('idle client across a server restart recovers (pixl-ipc stays on 5003 forever)', function () {
	$srv = (new Server())->start();
	$c = new PixlIPCClient($srv->socket);
	$e = array('x' => 'y');
	check_same($e, $c->send('/ipcserver/test/echo', $e), 'before');
	$srv->stop(); // the server half-closes, waits exit_timeout for us, then closes
	$srv->start();
	// The old connection is dead: the first send fails with a write
	// error (EPIPE) or sees the end of stream...
	try {
		$got = $c->send('/ipcserver/test/echo', $e);
		throw new AssertionFailed('send on a dead connection returned ' . var_export($got, true));
	} catch (AssertionFailed $a) {
		throw $a;
	} catch (Exception $x) {
		check(in_array($x->getCode(), array(PixlIPCClient::E_SOCKET_WRITE, PixlIPCClient::E_SERVER_CLOSE), true), 'code ' . $x->getCode() . ': ' . $x->getMessage());
	}
	// ...and the next one reconnects.
	check_same($e, $c->send('/ipcserver/test/echo', $e), 'after restart');
	check_same($e, $c->send('/ipcserver/test/echo', $e), 'and again');
	$c->close();
	$srv->stop();
});

$t->add('SIGKILL of the server mid-request: 5005, then reconnect', function () {
	$srv = (new Server())->start();
	$c = new PixlIPCClient($srv->socket, array('requestTimeout' => 10000));
	$srv->signalLater(9, 0.2);
	$d = array('delay' => 5000);
	check_throws(PixlIPCClient::E_SERVER_CLOSE, function () use ($c, $d) {
		$c->send('/ipcserver/test/delay', $d);
	}, 'send while the server is killed');
	$srv->waitExit();
	$srv->start(); // removes the stale socket file
	$e = array('back' => true);
	check_same($e, $c->send('/ipcserver/test/echo', $e), 'after restart');
	$c->close();
	$srv->stop();
});

$t->add('destructor closes the connection', function () {
	global $server;
	$s = array();
	$c = client();
	$c->send('/ipcserver/test/echo', $s);
	$before = $c->send('/ipcserver/stats', $s)['connections'];
	unset($c);
	$c = client();
	wait_for(function () use ($c, $s, $before) {
		// Our new connection replaces the destroyed one.
		return $c->send('/ipcserver/stats', $s)['connections'] <= $before;
	}, 'the server to see the close');
});

/** Starts fake_server.php in $mode; returns array(process, socket). */
function fake($mode)
{
	$sock = TestDir::socket('fake-' . $mode);
	$proc = proc_open(array(PHP_BINARY, __DIR__ . '/fake_server.php', $sock, $mode), array(0 => array('file', '/dev/null', 'r'), 1 => array('file', '/dev/null', 'w'), 2 => STDERR), $pipes);
	wait_for(function () use ($sock) {
		return file_exists($sock);
	}, "fake server on $sock");
	return array($proc, $sock);
}

function fake_done($proc)
{
	wait_for(function () use ($proc) {
		return !proc_get_status($proc)['running'];
	}, 'fake server to exit');
	proc_close($proc);
}

$t->add('messages without our id are discarded', function () {
	list($proc, $sock) = fake('push');
	$c = new PixlIPCClient($sock);
	$r = array('mine' => 1);
	check_same($r, $c->send('/x', $r), 'reply after pushes');
	check_same($r, $c->send('/x', $r), 'again');
	$c->close();
	fake_done($proc);
});

$t->add('a reply split across a read timeout is completed, not thrown as 5004', function () {
	list($proc, $sock) = fake('split');
	$c = new PixlIPCClient($sock, array('requestTimeout' => 150));
	$a = array('a' => 1);
	check_same(false, $c->send('/x', $a), 'first half only: timeout');
	usleep(400 * 1000); // the rest of the first reply arrives meanwhile
	$b = array('b' => 2);
	// pixl-ipc decoded the half line at the timeout and threw 5004; here
	// it is completed, found stale and discarded.
	check_same($b, $c->send('/x', $b), 'next send');
	$c->close();
	fake_done($proc);
});

$t->add('a write that times out throws 5006 and drops the connection', function () {
	list($proc, $sock) = fake('stall');
	$c = new PixlIPCClient($sock, array('requestTimeout' => 200));
	$big = array('s' => str_repeat('w', 16 << 20)); // more than the socket buffers hold
	check_throws(PixlIPCClient::E_TIMEOUT, function () use ($c, $big) {
		$c->send('/x', $big);
	}, 'send to a server that does not read');
	check(!$c->isConnected(), 'connection dropped after a partial write');
	fake_done($proc);
});

$t->add('a blank line from the server is a bad response (5004), as in pixl-ipc', function () {
	list($proc, $sock) = fake('blank');
	$c = new PixlIPCClient($sock);
	$r = array('x' => 1);
	check_throws(PixlIPCClient::E_BAD_RESPONSE, function () use ($c, $r) {
		$c->send('/x', $r);
	}, 'send');
	$c->close();
	fake_done($proc);
});

$t->run(isset($argv[1]) ? $argv[1] : null);
$server->stop();
printf("%d passed, %d failed\n", $t->passed, $t->failed);
exit($t->failed > 0 ? 1 : 0);
