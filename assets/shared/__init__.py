"""Framework-free ideas shared by several stages, each in one home: the example schema, chat rendering and
masks, groups, timestamps, the training record and the reference rule. Stage folders import these and
never each other; nothing here imports dagster."""
