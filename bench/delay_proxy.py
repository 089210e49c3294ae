#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that delays every byte by --delay-ms in each direction (a long link, such as a
cellular uplink, on one machine). TLS passes through untouched. Prints "listening on 127.0.0.1:PORT" once ready,
and runs until killed.

Usage: bench/delay_proxy.py --target-port N [--delay-ms 25]
"""
import argparse
import asyncio


async def pump(reader, writer, delay):
    # Each chunk is written `delay` after it was read, in order: a queue per direction keeps the stream intact
    # while many chunks are in flight (the delay adds latency, not a bandwidth limit).
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def write():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.ensure_future(write())
    try:
        while True:
            data = await reader.read(262144)
            if not data:
                break
            queue.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((loop.time() + delay, None))
    try:
        await task
    except ConnectionError:
        pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=25)
    args = parser.parse_args()
    delay = args.delay_ms / 1000

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", args.target_port)
        await asyncio.gather(pump(client_reader, server_writer, delay), pump(server_reader, client_writer, delay))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print("listening on 127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
