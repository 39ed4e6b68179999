#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into testdata/fuzz/ (run once when a target is
added; libFuzzer grows its own corpus from these, and crash inputs go to regressions/)."""
import json
import os
import random
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "fuzz")


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(ROOT, target, name), "wb") as out:
        out.write(data)


TASK = {"id": "397ce9f2-1", "status": "completed", "created_at": 1775383908,
        "completed_at": 1775383912, "output": {"urls": ["https://file.aivideoapi.ai/a.png"]}}
BOUND = "0123456789abcdef0123456789abcdef"
UNBOUND = "fedcba9876543210fedcba9876543210"


def jsonl():
    lines = {
        "explicit": {"id": "cat-1", "prompt": "a cat wearing sunglasses", "resolution": "2K"},
        "derived": {"prompt": "一只戴着墨镜的猫", "aspect_ratio": "16:9", "output_format": "png"},
        "urls": {"id": "ref", "prompt": "like this", "image_urls": ["https://example.com/a.png"]},
        "bad_values": {"id": "../etc", "prompt": "", "resolution": "8K", "aspect_ratio": "7:5"},
        "unknown_key": {"prompt": "x", "colour": "blue"},
        "wrong_types": {"id": 5, "prompt": ["x"], "image_urls": "https://a"},
        "control": {"id": "esc", "prompt": "red \u001b[31m text \u0007"},
        "meta": {"prompt": "x", "meta": {"label": "cat", "n": -3, "big": 18446744073709551615,
                                          "f": 0.5, "ok": False, "none": None, "id": "clash",
                                          "deep": {"a": 1}}},
    }
    for name, value in lines.items():
        write("jsonl_line", name, json.dumps(value, ensure_ascii=False))
    write("jsonl_line", "bad_utf8", b'{"prompt":"\xff\xfe"}')
    write("jsonl_line", "surrogate", '{"prompt":"\\ud800"}')
    write("jsonl_line", "not_object", "[1,2,3]")
    write("jsonl_line", "duplicate_key", '{"prompt":"a","prompt":"b"}')
    write("jsonl_line", "blank", "   \r")
    write("jsonl_line", "deep", "[" * 2000 + "]" * 2000)


def jsonl_manifest():
    good = '{"id":"a","prompt":"a cat","resolution":"2K"}\n{"prompt":"\\u732b"}\n'
    write("jsonl_manifest", "good", good)
    write("jsonl_manifest", "crlf_bom_blank",
          "\ufeff" + good.replace("\n", "\r\n") + "\n \t\r\n" + '{"prompt":"last"}')
    write("jsonl_manifest", "two_on_a_line", good + '{"prompt":"a"} {"prompt":"b"}\n' + good)
    write("jsonl_manifest", "across_lines", good + '{"prompt":\n"b"}\n' + good)
    write("jsonl_manifest", "open_string", good + '{"prompt":"open}\n' + good)
    write("jsonl_manifest", "bad_utf8", good.encode() + b'{"prompt":"\xff"}\n' + good.encode())
    write("jsonl_manifest", "scalars", "42\n\"text\"\nnull\n[1]\n}\n" + good)
    write("jsonl_manifest", "cr_alone", '{"prompt":"a"}\r{"prompt":"b"}\r\n\r \r\n' + good)


def yaml():
    write("yaml_manifest", "list", "- id: a\n  prompt: a cat\n- prompt: 一只猫\n  resolution: 4K\n")
    write("yaml_manifest", "mapping",
          "defaults:\n  resolution: 2K\n  aspect_ratio: \"3:2\"\nitems:\n  - prompt: a fox\n")
    write("yaml_manifest", "errors", "items:\n  - prompt: 5\n    colour: red\n  - id: ../x\n")
    write("yaml_manifest", "anchors", "- &a {prompt: one}\n- *a\n- <<: *a\n  id: two\n")
    write("yaml_manifest", "merges",
          "- &b {prompt: one, resolution: 2K}\n- &m {<<: [*b, {output_format: png}], id: m}\n"
          "- {<<: *m, id: n, '<<': quoted}\n- {<<: {<<: *m, prompt: two}, id: o}\n- <<: 3\n")
    write("yaml_manifest", "x_anchors_defaults",
          "x-s: &s {resolution: 2K}\nx-l: &l {<<: *s, output_format: png}\n"
          "defaults: {<<: [*l, *s], aspect_ratio: '1:1'}\nitems:\n  - {<<: *l, prompt: a}\n")
    write("yaml_manifest", "tags", "- !!binary aGVsbG8=\n- prompt: !!int 12\n")
    write("yaml_manifest", "deep", "[" * 3000 + "]" * 3000)
    write("yaml_manifest", "scalar", "just a string\n")
    write("yaml_manifest", "matrix",
          "- id: pets\n  prompt: \"{subject} in {style}, {{literal}}\"\n"
          "  matrix: {subject: [a cat, dog], style: [ink, \"oil paint\"], aspect_ratio: [\"1:1\"]}\n"
          "  repeat: 2\n  meta: {split: train, n: 7, ok: true, none: ~}\n"
          "- {prompt: \"{x\", matrix: {x: [1]}}\n- {prompt: a, repeat: 3}\n")


def config():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
    for name in ("example.yaml", "demo.yaml"):
        with open(os.path.join(here, name), "rb") as source:
            write("config", name, source.read())
    write("config", "bad", "limits:\n  rate: fast\n  burts: 3\napi: {prices: {8K: 9}}\n")
    write("config", "networks", "download:\n  allowed_networks: [127.0.0.0/8, 10.1.2.3/8, x]\n")
    write("config", "callbacks", "callbacks:\n  public_url: https://h/x\n  listen: 127.0.0.1:0\n")


def api():
    def seed(name, which, status, retry_after, body):
        write("api_bodies", name,
              bytes([which]) + struct.pack(">H", status - 100) + retry_after.encode() + b"\n" +
              (body if isinstance(body, bytes) else body.encode()))
    seed("submit_ok", 0, 200, "", json.dumps({"code": 200, "msg": "success",
                                             "data": {"taskId": "397ce9f2-1"}}))
    seed("submit_bad_id", 0, 200, "", json.dumps({"code": 200, "data": {"taskId": "../x\r\n"}}))
    seed("submit_html", 0, 200, "", "<html>hello</html>")
    seed("submit_429", 0, 429, "3", json.dumps({"error": {"code": "rate_limit_exceeded",
                                                          "message": "slow", "type": "t"}}))
    seed("submit_echo", 0, 401, "", json.dumps({"error": {"code": "invalid_api_key",
                                                          "message": "Bearer sk-secret-key"}}))
    seed("task_done", 1, 200, "", json.dumps(TASK))
    failed = dict(TASK, status="failed", error={"code": "content_policy", "message": "no\u0007"})
    del failed["output"]
    seed("task_failed", 1, 200, "", json.dumps(failed))
    seed("task_many_urls", 1, 200, "", json.dumps(dict(TASK, output={"urls": ["https://f/x"] * 40})))
    seed("task_404", 2, 404, "", json.dumps({"error": {"code": "task_not_found", "message": "m"}}))
    seed("credits", 3, 200, "", json.dumps({"code": 200, "data": {"credits": 1234}}))
    seed("retry_after", 4, 200, "", "120")
    seed("deep", 1, 200, "", "[" * 5000)


def http():
    body = json.dumps(TASK)
    responses = {
        "length": f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n{body}",
        "chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   f"{len(body):x}\r\n{body}\r\n0\r\n\r\n",
        "broken_chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        "length_short": f"HTTP/1.1 200 OK\r\nContent-Length: {len(body) + 50}\r\n\r\n{body}",
        "length_long": f"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{body}",
        "two_lengths": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        "eof_body": f"HTTP/1.0 200 OK\r\n\r\n{body}",
        "retry": "HTTP/1.1 429 Too Many\r\nRetry-After: 2\r\nContent-Length: 2\r\n\r\n{}",
        "redirect": "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\n"
                    "Content-Length: 0\r\n\r\n",
        "huge_header": "HTTP/1.1 200 OK\r\nX-A: " + "a" * 70000 + "\r\n\r\n",
    }
    for name, text in responses.items():
        write("http_response", name, bytes([7]) + text.encode())


def webhook():
    def post(token, body, method="POST"):
        return (f"{method} /hooks/{token} HTTP/1.1\r\nHost: h\r\nContent-Length: {len(body)}\r\n"
                f"\r\n{body}")
    done = json.dumps(dict(TASK, id="task-1"))
    other = json.dumps(dict(TASK, id="task-2"))
    requests = {
        "bound": post(BOUND, done),
        "unbound_reveals": post(UNBOUND, other),
        "other_task": post(BOUND, other),
        "get": post(BOUND, "", "GET"),
        "unknown": post("0" * 32, done),
        "not_json": post(BOUND, "<html>"),
        "query": post(BOUND + "?x=1", done),
        "chunked": f"POST /x/{BOUND} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   f"{len(done):x}\r\n{done}\r\n0\r\n\r\n",
        "big": f"POST /{BOUND} HTTP/1.1\r\nContent-Length: 999999\r\n\r\nxx",
    }
    for name, text in requests.items():
        write("webhook_request", name, bytes([5]) + text.encode())


def journal_seeds():
    demo = sys.argv[1] if len(sys.argv) > 1 else None
    if demo:
        with open(demo, "rb") as source:
            log = source.read()
        for mode in (0, 2, 3):
            write("journal", f"demo_journal_mode{mode}", bytes([mode]) + log)
        write("journal", "demo_journal_torn", bytes([2]) + log[:len(log) - 17])
        # Mode 1: the records alone, length-prefixed, in order, shuffled and reversed.
        payloads, offset = [], 0
        while offset + 9 <= len(log):
            length = struct.unpack("<I", log[offset:offset + 4])[0]
            if log[offset + 8] == 2:
                payloads.append(log[offset + 9:offset + 9 + length])
            offset += 9 + length

        def records(sequence):
            return bytes([1]) + b"".join(struct.pack("<H", len(p)) + p for p in sequence
                                         if len(p) < 65536)
        shuffled = payloads[:]
        random.Random(3).shuffle(shuffled)
        write("journal", "records_in_order", records(payloads))
        write("journal", "records_shuffled", records(shuffled))
        write("journal", "records_reversed", records(payloads[::-1]))
        write("journal", "demo_journal_flipped",
              bytes([0]) + log[:200] + bytes([log[200] ^ 0xff]) + log[201:])
    write("journal", "empty_records", bytes([1]))
    write("journal", "garbage", bytes([2]) + b"not a journal at all")


if __name__ == "__main__":
    jsonl()
    jsonl_manifest()
    yaml()
    config()
    api()
    http()
    webhook()
    journal_seeds()
