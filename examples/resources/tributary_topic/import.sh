#!/bin/sh
# A topic is imported as <cluster_id>/<topic name>.
terraform import tributary_topic.orders tc-0123456789abcdef/orders
