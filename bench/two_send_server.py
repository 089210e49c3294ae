#!/usr/bin/env python3
"""A minimal IoT-Core HTTPS endpoint (/auth answers a token, /topic/... answers RetCode 0) that writes each
answer's headers and body in two sends on a socket without TCP_NODELAY, as some servers and proxies do. Nagle
then holds the body until the client ACKs the headers, and a client that delays its ACK (Linux: up to 40 ms)
waits that long on every request. Prints "listening on 127.0.0.1:PORT" once ready; runs until killed.

Usage: bench/two_send_server.py --cert CERT.pem --key KEY.pem
"""
import argparse
import base64
import json
import socket
import ssl
import threading
import time


def token():
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    now = int(time.time())
    return part({"alg": "HS256", "typ": "JWT"}) + "." + part({"exp": now + 7 * 86400, "iat": now}) + ".c2ln"


def serve(connection):
    buffer = b""
    try:
        while True:
            while b"\r\n\r\n" not in buffer:
                data = connection.recv(262144)
                if not data:
                    return
                buffer += data
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            path = lines[0].split(b" ")[1]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                data = connection.recv(262144)
                if not data:
                    return
                buffer += data
            buffer = buffer[length:]
            if path == b"/auth":
                body = json.dumps({"RetCode": 0, "Message": "Success", "Token": token()}).encode()
            else:
                body = b'{"RetCode":0,"Message":"Success","MessageID":"1"}'
            # Two sends: the headers, then the body.
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
            connection.sendall(body)
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    print("listening on 127.0.0.1:%d" % listener.getsockname()[1], flush=True)
    while True:
        raw, _ = listener.accept()
        try:
            connection = context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            continue
        threading.Thread(target=serve, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    main()
