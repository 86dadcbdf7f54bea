"""A reporting program for the concurrency tests: `python usage_worker.py CONFIG N KEYS_JSON`.

Sends N usage reports one at a time through keyward.client (daemon socket or database), cycling
through the ways of naming a key, and prints one JSON line: how many went via each path.
"""

from __future__ import annotations

import json
import sys
from collections import Counter


def main() -> int:
    config, n, keys = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    from keyward.usage.reporter import send_reports
    from keyward.usage.reports import UsageReport

    via: Counter[str] = Counter()
    for i in range(n):
        secret, key_id = keys[i % len(keys)]
        if i % 3 == 0:
            report = UsageReport(key=secret, requests=1, input_tokens=i % 7, output_tokens=1)
        elif i % 3 == 1:
            report = UsageReport(key_id=key_id, requests=1, input_tokens=i % 7, output_tokens=1)
        else:
            report = UsageReport(pool="main", requests=1, input_tokens=i % 7, output_tokens=1)
        via[send_reports([report], config_path=config)["via"]] += 1
    print(json.dumps(dict(via)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
