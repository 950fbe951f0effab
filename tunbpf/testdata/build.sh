#!/bin/sh
# Rebuilds filters.o from filters.c (needs clang; Debian: apt-get install clang).
set -eu
cd "$(dirname "$0")"
clang -O2 -g0 -target bpfel -c filters.c -o filters.o
