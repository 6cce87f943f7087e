"""Python peer for doorman's bench: a multiprocessing.connection Listener
with an authkey (HMAC challenge both ways, no encryption), one thread per
connection, echoing every message. Prints "listening on HOST:PORT" once
ready; runs until a signal (SIGTERM) ends it. The key comes from
BENCH_AUTHKEY (hex).
"""

import os
import threading
from multiprocessing.connection import Listener


def echo(conn):
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except (EOFError, OSError):
        pass
    finally:
        conn.close()


def accept_loop(listener):
    while True:
        try:
            conn = listener.accept()
        except OSError:
            return
        except Exception:  # a failed authentication: keep serving
            continue
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def main():
    authkey = bytes.fromhex(os.environ["BENCH_AUTHKEY"])
    listener = Listener(("127.0.0.1", 0), authkey=authkey, backlog=1024)
    host, port = listener.address
    print(f"listening on {host}:{port}", flush=True)
    threading.Thread(target=accept_loop, args=(listener,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
