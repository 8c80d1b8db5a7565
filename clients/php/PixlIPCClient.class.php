<?php
/**
 * PixlIPCClient: a blocking client for procwire's JSON IPC server (the
 * pixl-ipc protocol: one JSON object per line over a Unix stream socket).
 *
 * It keeps the API of pixl-ipc's clients/PixlIPCClient.class.php, so code
 * written for it works unchanged: the constructor options, send($uri,
 * &$request) returning the reply's data (or false on a read timeout),
 * auto-connect on first use and after the server closed, replies with
 * other ids discarded, and exceptions with codes 5001-5006.
 *
 * Fixed relative to pixl-ipc 1.1.3 (see README.md):
 *  - a failed write (EPIPE after the server went away, or a write timeout)
 *    drops the connection, so the next send() reconnects instead of failing
 *    with 5003 forever;
 *  - close() exists;
 *  - a reply line that arrives in pieces across a read timeout is kept and
 *    completed on the next read, not mistaken for bad JSON;
 *  - a read error that is neither a timeout nor EOF ends the connection
 *    with 5005 instead of looping;
 *  - a reply without "data" returns null without a PHP warning.
 */
class PixlIPCClient
{
	const E_SOCKET_CONNECT = 5001;
	const E_BAD_REQUEST_TYPE = 5002;
	const E_SOCKET_WRITE = 5003;
	const E_BAD_RESPONSE = 5004;
	const E_SERVER_CLOSE = 5005;
	const E_TIMEOUT = 5006;

	protected $socketPath = '';
	/** @var resource|null */
	protected $fp = null;
	protected $connectTimeout_s = 0.5;
	protected $streamTimeout_s = 0;
	protected $streamTimeout_uS = 500000;
	protected $serialCounter = 0;
	protected $pid = 0;
	protected $userAgent = '';
	/** Start of a reply line whose end has not arrived yet. */
	protected $partial = '';

	/**
	 * @param string $socketPath path of the server's Unix socket
	 * @param array|null $options connectTimeout and requestTimeout in ms
	 *        (default 500 each), userAgent
	 */
	public function __construct($socketPath, $options = null)
	{
		$this->socketPath = $socketPath;
		$this->pid = getmypid();
		if ($options && isset($options['connectTimeout'])) {
			$this->connectTimeout_s = $options['connectTimeout'] / 1000.0;
		}
		if ($options && isset($options['requestTimeout'])) {
			$timeout = $options['requestTimeout'];
			$this->streamTimeout_s = (int)floor($timeout / 1000.0);
			$this->streamTimeout_uS = (int)floor(($timeout - $this->streamTimeout_s * 1000) * 1000);
		}
		$this->userAgent = isset($options['userAgent']) ? $options['userAgent'] : 'PHP/PixlIPCClient' . getcwd();
	}

	public function __destruct()
	{
		$this->close();
	}

	/** Connects to the server; throws 5001 on failure. */
	public function connect()
	{
		$this->close();
		$fp = @stream_socket_client('unix://' . $this->socketPath, $errno, $errstr, $this->connectTimeout_s);
		if (!$fp) {
			throw new Exception("PixlIPCClient.connect(): stream_socket_client() failed: reason: $errno, $errstr", self::E_SOCKET_CONNECT);
		}
		// Applies to writes too from the start (pixl-ipc left writes on
		// default_socket_timeout, 60 s, until the first read).
		stream_set_timeout($fp, $this->streamTimeout_s, $this->streamTimeout_uS);
		$this->fp = $fp;
	}

	/** Whether a connection is open (it may still have been closed by the server). */
	public function isConnected()
	{
		return $this->fp !== null;
	}

	/** Closes the connection; the next send() connects again. */
	public function close()
	{
		if ($this->fp) {
			@stream_socket_shutdown($this->fp, STREAM_SHUT_RDWR);
			@fclose($this->fp);
		}
		$this->fp = null;
		$this->partial = '';
	}

	protected function nextID()
	{
		return 'rq' . $this->serialCounter++;
	}

	/**
	 * Sends $request (an array or object) to $uri and waits for the reply
	 * with the same id. Returns the reply's data, or false if no reply came
	 * within requestTimeout (a late reply is discarded by a later send).
	 */
	public function send($uri, &$request)
	{
		if (is_string($request) || !(is_array($request) || is_object($request))) {
			throw new Exception('Request must be an object or associative array', self::E_BAD_REQUEST_TYPE);
		}
		if ($this->fp === null) {
			$this->connect();
		}
		$ipcReqID = $this->nextID();
		$line = json_encode(array(
			'uri' => $uri,
			'ipcReqID' => $ipcReqID,
			'data' => $request,
			'pid' => $this->pid,
			'userAgent' => $this->userAgent,
		));
		if ($line === false) {
			throw new Exception('Could not json_encode request: ' . json_last_error_msg(), self::E_BAD_REQUEST_TYPE);
		}
		$this->write($line . "\n");

		while (true) {
			$response = $this->readMessage();
			if ($response === false) {
				return false; // read timeout, as in pixl-ipc
			}
			if (isset($response['ipcReqID']) && $response['ipcReqID'] == $ipcReqID) {
				return array_key_exists('data', $response) ? $response['data'] : null;
			}
			// A reply to an earlier, timed-out request, or a message
			// without an id: not ours.
		}
	}

	protected function write($buf)
	{
		$len = strlen($buf);
		$done = 0;
		while ($done < $len) {
			$n = @fwrite($this->fp, $done === 0 ? $buf : substr($buf, $done));
			if ($n === false || $n === 0) {
				$meta = stream_get_meta_data($this->fp);
				$err = error_get_last();
				$why = $err ? $err['message'] : 'no bytes written';
				// A part of a line may be in the socket: the connection
				// cannot be used for another request, so drop it.
				$this->close();
				if ($meta['timed_out']) {
					throw new Exception("Socket write timed out after $done of $len bytes", self::E_TIMEOUT);
				}
				if ($meta['eof']) {
					throw new Exception('Server closed the connection (write)', self::E_SERVER_CLOSE);
				}
				throw new Exception("Socket write error after $done of $len bytes: $why", self::E_SOCKET_WRITE);
			}
			$done += $n;
		}
	}

	/**
	 * Reads one reply: the decoded array, or false on a read timeout.
	 * Throws 5004 for a line that is not a JSON object and 5005 at EOF.
	 */
	protected function readMessage()
	{
		stream_set_timeout($this->fp, $this->streamTimeout_s, $this->streamTimeout_uS);
		$read = @fgets($this->fp);
		if ($read === false || $read === '') {
			$meta = stream_get_meta_data($this->fp);
			if ($meta['timed_out'] && !$meta['eof']) {
				return false;
			}
			$this->close();
			throw new Exception('Server closed the connection (readMessage)', self::E_SERVER_CLOSE);
		}
		if (substr($read, -1) !== "\n") {
			// The rest of the line is still on its way (timeout) or will
			// never come (EOF).
			$meta = stream_get_meta_data($this->fp);
			if ($meta['eof']) {
				$this->close();
				throw new Exception('Server closed the connection in the middle of a reply (readMessage)', self::E_SERVER_CLOSE);
			}
			$this->partial .= $read;
			return false;
		}
		if ($this->partial !== '') {
			$read = $this->partial . $read;
			$this->partial = '';
		}
		$response = json_decode($read, true);
		if (!$response || !is_array($response)) {
			throw new Exception('Could not json_decode response, details: ' . json_last_error_msg(), self::E_BAD_RESPONSE);
		}
		return $response;
	}
}
