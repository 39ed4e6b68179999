#!/usr/bin/env python3
"""What a competent Python user writes instead of nanobatch: the baseline of tools/bench.

asyncio + aiohttp (Debian's python3-aiohttp), one TLS connection pool, a semaphore bounding the
tasks in flight, a token bucket on API requests, retries with backoff on 429/5xx/network errors,
JSONL in, images and metadata.jsonl out. No journal, no fsync, no resume, no budget: it does
less than nanobatch, which is the point of measuring against it.

  aiohttp_runner.py --manifest m.jsonl --out DIR --base-url https://127.0.0.1:PORT \
      --ca-file ca.pem [--concurrency 500] [--rate 10000] [--burst 1000]
Key: $AIVIDEOAPI_API_KEY.
"""
import argparse
import asyncio
import json
import os
import ssl
import sys
import time

import aiohttp


class TokenBucket:
    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.tokens, self.last = burst, time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self):
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


async def request(session, bucket, method, url, **kwargs):
    for attempt in range(8):
        await bucket.take()
        try:
            async with session.request(method, url, **kwargs) as response:
                body = await response.read()
                if response.status == 429 or response.status >= 500:
                    await asyncio.sleep(min(30, 0.5 * 2 ** attempt))
                    continue
                return response.status, body
        except (aiohttp.ClientError, asyncio.TimeoutError):
            await asyncio.sleep(min(30, 0.5 * 2 ** attempt))
    raise RuntimeError(f"{method} {url}: retries exhausted")


async def run_item(item, args, session, bucket, semaphore, metadata):
    async with semaphore:
        body = {"model": "nano-banana-2",
                "input": {"prompt": item["prompt"], "resolution": item.get("resolution", "1K"),
                          "output_format": item.get("output_format", "png")}}
        status, answer = await request(session, bucket, "POST",
                                       args.base_url + "/v1/images/generations", json=body)
        if status != 200:
            raise RuntimeError(f"submit {item['id']}: HTTP {status}")
        task_id = json.loads(answer)["data"]["taskId"]
        delay = 0.05
        while True:
            status, answer = await request(session, bucket, "GET",
                                           args.base_url + "/v1/tasks/" + task_id)
            task = json.loads(answer)
            if task.get("status") == "completed":
                break
            if task.get("status") == "failed":
                metadata.write(json.dumps({"id": item["id"], "failed": task.get("error")}) + "\n")
                return
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 1.5)
        for index, url in enumerate(task["output"]["urls"]):
            async with session.get(url) as response:
                name = f"{item['id']}-{index}.png" if index else f"{item['id']}.png"
                with open(os.path.join(args.out, name), "wb") as out:
                    async for chunk in response.content.iter_chunked(1 << 16):
                        out.write(chunk)
            metadata.write(json.dumps({"id": item["id"], "task_id": task_id, "file": name,
                                       "url": url, "prompt": item["prompt"]}) + "\n")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--rate", type=float, default=10000)
    parser.add_argument("--burst", type=float, default=1000)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.manifest) as manifest:
        items = [json.loads(line) for line in manifest if line.strip()]
    tls = ssl.create_default_context(cafile=args.ca_file)
    headers = {"Authorization": "Bearer " + os.environ["AIVIDEOAPI_API_KEY"]}
    connector = aiohttp.TCPConnector(ssl=tls, limit=64)
    bucket = TokenBucket(args.rate, args.burst)
    semaphore = asyncio.Semaphore(args.concurrency)
    with open(os.path.join(args.out, "metadata.jsonl"), "w") as metadata:
        async with aiohttp.ClientSession(connector=connector, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=120)) as session:
            results = await asyncio.gather(
                *(run_item(item, args, session, bucket, semaphore, metadata) for item in items),
                return_exceptions=True)
    failures = [r for r in results if isinstance(r, Exception)]
    for failure in failures[:5]:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
