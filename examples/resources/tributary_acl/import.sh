#!/bin/sh
# An ACL is imported as
# cluster_id|resource_type|pattern_type|resource_name|principal|host|operation|permission
# (quote it: the id holds "|" and often "*").
terraform import tributary_acl.payments_write 'tc-0123456789abcdef|TOPIC|PREFIXED|payments.|User:payments|*|WRITE|ALLOW'
