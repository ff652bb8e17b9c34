"""The orchestrator: plan models and checks, planner, router, scheduler, agent tool loop, synthesis."""
