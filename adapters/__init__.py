"""Chat adapters: Slack, Discord and the console; thin layers over the core."""
