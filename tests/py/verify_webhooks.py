"""Verifies webhook deliveries with the Standard Webhooks reference library (PyPI `standardwebhooks`).

Usage: verify_webhooks.py SECRET FILE, where FILE holds a JSON list of {"id", "timestamp", "signature", "body"}.
Prints how many were verified; exits 1 naming the first that is not.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook

secret, path = sys.argv[1], sys.argv[2]
webhook = Webhook(secret)
with open(path, encoding="utf-8") as file:
    deliveries = json.load(file)
for number, delivery in enumerate(deliveries):
    headers = {
        "webhook-id": delivery["id"],
        "webhook-timestamp": delivery["timestamp"],
        "webhook-signature": delivery["signature"],
    }
    try:
        webhook.verify(delivery["body"], headers)
    except Exception as error:  # the library's own error names what failed
        print(f"delivery {number} ({delivery['id']}) not verified: {error!r}")
        sys.exit(1)
print(f"verified {len(deliveries)}")
