"""Review of a diff before it is committed: what is staged (or a commit range), a local secret scan that needs no
model, a bounded model review by the routing table's "review" agent, and the policy that turns findings into an
exit status. The pre-commit hook (`aetherflow.hooks.pre_commit`) and `aether review` both run `runner.review`.
"""
