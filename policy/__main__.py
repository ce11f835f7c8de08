"""Entry point the Pulumi engine runs: `pulumi preview --policy-pack policy/` (see README.md here)."""

from naomi_pack import policies
from pulumi_policy import PolicyPack

PolicyPack(name="naomi", policies=policies())
