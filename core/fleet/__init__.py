"""The fleet (issue 21): station heartbeats, and model / recipe rollouts to every running station."""
