<?php
// A tiny test runner and a real `procwire serve` for the PixlIPCClient tests.

// PHP_CLIENT_CLASS runs the suite against another copy (e.g. pixl-ipc's own, to see its bugs).
require_once getenv('PHP_CLIENT_CLASS') ?: __DIR__ . '/../PixlIPCClient.class.php';

class AssertionFailed extends Exception
{
}

class Runner
{
	private $tests = array();
	public $passed = 0;
	public $failed = 0;

	public function add($name, $fn)
	{
		$this->tests[] = array($name, $fn);
	}

	public function run($filter = null)
	{
		foreach ($this->tests as list($name, $fn)) {
			if ($filter !== null && strpos($name, $filter) === false) {
				continue;
			}
			$t0 = microtime(true);
			try {
				$fn();
				$this->passed++;
				printf("ok   %s (%.0f ms)\n", $name, (microtime(true) - $t0) * 1000);
			} catch (Throwable $e) {
				$this->failed++;
				printf("FAIL %s: %s: %s\n     at %s:%d\n", $name, get_class($e), $e->getMessage(), $e->getFile(), $e->getLine());
			}
		}
	}
}

function check($cond, $msg = 'assertion failed')
{
	if (!$cond) {
		throw new AssertionFailed($msg);
	}
}

function check_same($want, $got, $what = 'value')
{
	if ($want !== $got) {
		throw new AssertionFailed("$what: want " . var_export($want, true) . ', got ' . var_export($got, true));
	}
}

/** Runs $fn and checks it throws an Exception with code $code; returns it. */
function check_throws($code, $fn, $what = 'call')
{
	try {
		$fn();
	} catch (AssertionFailed $e) {
		throw $e;
	} catch (Exception $e) {
		if ($e->getCode() !== $code) {
			throw new AssertionFailed("$what: want exception code $code, got " . $e->getCode() . ': ' . $e->getMessage());
		}
		return $e;
	}
	throw new AssertionFailed("$what: want exception code $code, got none");
}

/** Polls $fn until it returns true; the deadline is only a safety net. */
function wait_for($fn, $what, $seconds = 20)
{
	$deadline = microtime(true) + $seconds;
	while (microtime(true) < $deadline) {
		if ($fn()) {
			return;
		}
		usleep(10000);
	}
	throw new AssertionFailed("timed out waiting for $what");
}

class TestDir
{
	public static $dir = null;
	public static $serial = 0;

	public static function get()
	{
		if (self::$dir === null) {
			self::$dir = sys_get_temp_dir() . '/procwire-php-' . getmypid();
			@mkdir(self::$dir, 0700);
			register_shutdown_function(function () {
				foreach (glob(TestDir::$dir . '/*') ?: array() as $f) {
					@unlink($f);
				}
				@rmdir(TestDir::$dir);
			});
		}
		return self::$dir;
	}

	public static function socket($name = 'ipc')
	{
		return self::get() . '/' . $name . '-' . self::$serial++ . '.sock';
	}
}

/** A `procwire serve` child process on its own socket. */
class Server
{
	public $socket;
	public $pid = 0;
	private $proc = null;
	private $log;

	public function __construct($socket = null)
	{
		$this->socket = $socket ?: TestDir::socket();
		$this->log = $this->socket . '.log';
	}

	/** Servers a failed test left running are killed when the runner exits. */
	public static $all = null;

	private static function track($srv)
	{
		if (self::$all === null) {
			self::$all = array();
			register_shutdown_function(function () {
				foreach (Server::$all as $s) {
					if ($s->running()) {
						$s->stop(9);
					}
				}
			});
		}
		if (!in_array($srv, self::$all, true)) {
			self::$all[] = $srv;
		}
	}

	public static function bin()
	{
		$bin = getenv('PROCWIRE_BIN');
		if ($bin) {
			return $bin;
		}
		$bin = TestDir::get() . '/procwire';
		if (!file_exists($bin)) {
			$root = realpath(__DIR__ . '/../../..');
			$out = array();
			exec('cd ' . escapeshellarg($root) . ' && go build -o ' . escapeshellarg($bin) . ' ./cmd/procwire 2>&1', $out, $rc);
			if ($rc !== 0) {
				throw new Exception("go build failed:\n" . implode("\n", $out));
			}
		}
		return $bin;
	}

	public function start()
	{
		self::track($this);
		$cmd = array(self::bin(), 'serve', '--socket', $this->socket, '--log-level', 'warn');
		$this->proc = proc_open($cmd, array(0 => array('file', '/dev/null', 'r'), 1 => array('file', '/dev/null', 'w'), 2 => array('file', $this->log, 'a')), $pipes);
		if (!is_resource($this->proc)) {
			throw new Exception('cannot start procwire serve');
		}
		$this->pid = proc_get_status($this->proc)['pid'];
		$sock = $this->socket;
		$proc = $this->proc;
		$log = $this->log;
		wait_for(function () use ($sock, $proc, $log) {
			if (!proc_get_status($proc)['running']) {
				throw new Exception('procwire serve exited: ' . @file_get_contents($log));
			}
			$fp = @stream_socket_client('unix://' . $sock, $errno, $errstr, 1);
			if ($fp) {
				fclose($fp);
				return true;
			}
			return false;
		}, "procwire serve on $sock");
		return $this;
	}

	/** Sends $signal (15: a graceful shutdown, 9: SIGKILL) after $delay seconds, without waiting. */
	public function signalLater($signal, $delay)
	{
		exec(sprintf('(sleep %.3f; kill -%d %d) >/dev/null 2>&1 &', $delay, $signal, $this->pid));
	}

	public function running()
	{
		return $this->proc !== null && proc_get_status($this->proc)['running'];
	}

	/** Stops the server with $signal and waits for it to exit. */
	public function stop($signal = 15)
	{
		if ($this->proc === null) {
			return;
		}
		if ($this->running()) {
			proc_terminate($this->proc, $signal);
		}
		$proc = $this->proc;
		wait_for(function () use ($proc) {
			return !proc_get_status($proc)['running'];
		}, 'procwire serve to exit');
		proc_close($this->proc);
		$this->proc = null;
	}

	/** Waits for an exit caused by signalLater. */
	public function waitExit()
	{
		$self = $this;
		wait_for(function () use ($self) {
			return !$self->running();
		}, 'procwire serve to exit');
		$this->stop();
	}
}
