"""Shared text helpers of the operator families: word and line statistics, hashing, n-gram LMs.

No operators here."""
