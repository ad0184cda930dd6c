#!/bin/sh
# A SCRAM user is imported as <cluster_id>/<name>/<mechanism>. The password
# cannot be read back: the next apply sets the configured one.
terraform import tributary_scram_user.alice tc-0123456789abcdef/alice/SCRAM-SHA-512
