#!/usr/bin/env python3
"""Checks the frames the server really sent against docs/asyncapi.yaml.

    deploy/dev/check-frames.py docs/asyncapi.yaml DIR

DIR holds `frames-*.jsonl` (one server frame per line), written by the test clients
when WP_RECORD_FRAMES is set (deploy/dev/test.sh does). Each frame must match a message
of the document whose payload says `type: {const: <the frame's type>}` (or lists it in
`enum`), strictly: an
object schema that lists its properties allows no others, so a field the server sends
and the document does not name fails as surely as a wrong type. Exit 1 with the
differences grouped by frame type; frame types the document does not have fail too.
"""
import collections
import glob
import json
import os
import sys

import jsonschema
import yaml


def strict(node):
    """Every object schema that lists properties and says nothing of others allows none
    (unevaluatedProperties sees through allOf, so the envelope's own fields count)."""
    if isinstance(node, dict):
        if "properties" in node and not {"additionalProperties", "unevaluatedProperties"} & node.keys():
            node["unevaluatedProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)


def main():
    spec_path, frames_dir = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        doc = yaml.safe_load(f)
    strict(doc["components"])
    by_type = collections.defaultdict(list)
    for name, message in doc["components"]["messages"].items():
        kind = message.get("payload", {}).get("properties", {}).get("type") or {}
        for const in [kind["const"]] if "const" in kind else kind.get("enum", []):
            by_type[const].append(name)

    validators = {}
    def validator(name):
        if name not in validators:
            root = dict(doc)
            root["$ref"] = f"#/components/messages/{name}/payload"
            validators[name] = jsonschema.Draft202012Validator(root)
        return validators[name]

    seen = set()
    counts = collections.Counter()
    problems = collections.defaultdict(list)
    files = sorted(glob.glob(os.path.join(frames_dir, "frames-*.jsonl")))
    for path in files:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line in seen:
                    continue
                seen.add(line)
                frame = json.loads(line)
                kind = frame.get("type")
                counts[kind] += 1
                names = by_type.get(kind)
                if not names:
                    problems[kind].append(("the document has no message of this type", frame))
                    continue
                errors = []
                for name in names:
                    errs = sorted(validator(name).iter_errors(frame), key=lambda e: list(e.path))
                    if not errs:
                        errors = None
                        break
                    errors.extend(f"{name}: /{'/'.join(map(str, e.path))}: {e.message[:300]}" for e in errs[:3])
                if errors:
                    problems[kind].append(("; ".join(errors), frame))
    print(f"{len(seen)} distinct frames of {len(counts)} types from {len(files)} files")
    if not problems:
        print("every frame matches docs/asyncapi.yaml")
        return 0
    for kind, items in sorted(problems.items(), key=lambda kv: str(kv[0])):
        print(f"\n`{kind}`: {len(items)} of {counts[kind]} distinct frames do not match")
        for why, frame in items[:2]:
            print(f"  {why}\n  frame: {json.dumps(frame)[:600]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
