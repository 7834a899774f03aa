# stack-chains.awk - worst-case stack of each entry point, from GCC's -fcallgraph-info=su files
# (.ci, VCG format): a function's frame (-fstack-usage) plus the deepest chain of frames below
# it. Titles are "file:name" for static functions and "name" for external ones, so the
# graphs of all files join on the external names.
#
#   awk -f stack-chains.awk -v roots="fota_feed fota_start" *.ci
#
# Prints one line per root: total bytes, then the chain with each frame. Calls through a
# function pointer (the platform's callbacks: "__indirect_call") and into the C library
# (memcpy, memset, memmove: leaf assembly on the LX106) count as 0; the library's code has no
# recursion, which the depth-first search below would otherwise report as a cycle.

function short(t) { sub(/.*:/, "", t); return t }

/^node:/ {
	t = $0; sub(/.*title: "/, "", t); sub(/".*/, "", t)
	if (match($0, /[0-9]+ bytes/)) {
		n = substr($0, RSTART, RLENGTH); sub(/ bytes/, "", n)
		frame[t] = n + 0
		if ($0 ~ /dynamic/) dynamic[t] = 1
	}
	seen[t] = 1
}

/^edge:/ {
	s = $0; sub(/.*sourcename: "/, "", s); sub(/".*/, "", s)
	d = $0; sub(/.*targetname: "/, "", d); sub(/".*/, "", d)
	if (!((s, d) in has)) { has[s, d] = 1; kids[s] = kids[s] " " d }
}

# depth(t): worst stack from entering t; best[t] is the child on that path.
function depth(t,    n, i, k, v, m) {
	if (t in memo) return memo[t]
	if (t in busy) { print "stack-chains: recursion through " t > "/dev/stderr"; exit 1 }
	busy[t] = 1
	m = 0
	n = split(kids[t], k, " ")
	for (i = 1; i <= n; i++) {
		v = depth(k[i])
		if (v > m) { m = v; best[t] = k[i] }
	}
	delete busy[t]
	memo[t] = frame[t] + m
	return memo[t]
}

END {
	n = split(roots, r, " ")
	for (i = 1; i <= n; i++) {
		t = r[i]
		if (!(t in seen)) { printf "  %-16s (not compiled)\n", t; continue }
		total = depth(t)
		line = ""
		for (c = t; c != ""; c = best[c]) {
			line = line (line == "" ? "" : " > ") short(c) " " frame[c] (c in dynamic ? "(dyn)" : "")
			if (!(c in best)) break
		}
		printf "  %-16s %4d  %s\n", t, total, line
	}
}
