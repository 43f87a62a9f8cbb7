"""The playbook DSL: canonical models, YAML loading with positions, legacy forms, checks, templates."""
