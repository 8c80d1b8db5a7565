<?php
// Rough speed check of PixlIPCClient against procwire serve:
//   php bench.php [SOCKET]
// Without SOCKET it starts its own server (PROCWIRE_BIN or a go build).
// Prints sequential round trips per payload size.

require_once __DIR__ . '/tests/lib.php';

$server = null;
$sock = isset($argv[1]) ? $argv[1] : null;
if ($sock === null) {
	$server = (new Server())->start();
	$sock = $server->socket;
}
$c = new PixlIPCClient($sock, array('requestTimeout' => 5000));
foreach (array(1, 5, 10, 20, 100) as $k) {
	$payload = array('s' => str_repeat('x', $k * 1024));
	$n = 0;
	$t0 = microtime(true);
	while (microtime(true) - $t0 < 1.0) {
		$c->send('/ipcserver/test/echo', $payload);
		$n++;
	}
	$secs = microtime(true) - $t0;
	printf("sequential echo %3dK: %.1f µs/req, %d req/s\n", $k, $secs / $n * 1e6, $n / $secs);
}
$c->close();
if ($server) {
	$server->stop();
}
