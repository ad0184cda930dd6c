#!/bin/sh
# A quota is imported as cluster_id|user=NAME|client-id=NAME (the parts the
# entity has, or ip=ADDRESS alone; <default> for a default part). Quote it:
# the id holds "|" and often "<" and ">".
terraform import tributary_quota.importer 'tc-0123456789abcdef|user=importer'
