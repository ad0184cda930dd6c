#!/bin/sh
# A cluster is imported by its cluster id (the tributary:cluster-id tag on
# every one of its AWS objects).
terraform import tributary_cluster.orders tc-0123456789abcdef
