#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Puts a benchmark's table into a docs page, between <!-- MARKER --> and
<!-- /MARKER -->, replacing what stood there.
usage: scripts/doc-table.py FILE MARKER < table"""
import os
import sys

path, marker = sys.argv[1], sys.argv[2]
table = sys.stdin.read().rstrip("\n")
begin, end = "<!-- %s -->" % marker, "<!-- /%s -->" % marker
text = open(path).read()
a, b = text.find(begin), text.find(end)
if a < 0 or b < a:
    sys.exit("doc-table: %s has no %s ... %s" % (path, begin, end))
text = text[:a] + begin + "\n" + table + "\n" + text[b:]
with open(path + ".tmp", "w") as f:
    f.write(text)
os.replace(path + ".tmp", path)
