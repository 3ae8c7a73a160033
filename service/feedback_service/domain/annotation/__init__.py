"""The reviewer workflow: annotation queues, claims, submissions and inter-rater agreement."""
