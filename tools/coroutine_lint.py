#!/usr/bin/env python3
"""tools/coroutine_lint.py: flags coroutine shapes that this machine's compiler gets wrong.

    python3 tools/coroutine_lint.py [--self-test] [FILE...]

GCC 12.2 (Debian 12's compiler) miscompiles a coroutine that declares no local variable and
co_awaits inside the condition of an `if`, `while` or `for`: resumed after that await, the
coroutine runs a destroyed frame (SIGILL or SIGSEGV) or never completes, silently. A named local
anywhere in the body avoids it, so the fix is always the same:

    if (!co_await recorder_.Commit()) co_return false;           // miscompiled with no local
    const bool committed = co_await recorder_.Commit();          // fine
    if (!committed) co_return false;

It also runs an await that a short-circuit operator (&&, ||, ?:) should have skipped, in a
`co_return` expression, a `while` or `for` condition and a call's arguments (not in an `if`
condition, an initialisation or an assignment): a small Asio program shows each, at -O1 and
-O2. Those shapes are flagged everywhere, lambdas included:

    co_return revealed ? co_await submitted(*revealed) : kStopped;  // submitted() always runs
    if (revealed) co_return co_await submitted(*revealed);         // fine
    co_return kStopped;

(The first shape was found in Job::AfterFailedTask: engine_test died with SIGILL. A six-line
Asio program crashes or never completes the same way, for free and member functions, with or
without parameters, returning bool or an enum, in if, while and for conditions; the same shape in
a lambda ran correctly, there and in five lambdas of this codebase, so lambdas are not flagged
for it. The second was found in Submitter::Submit: a stopped run recorded three items as
submitted with an empty task id, their credits counted twice. `--self-test` checks that this
lint flags both shapes and passes their fixes.)

Scans every .cc and .h under runner/ and tools/ (tests included: a silently dropped coroutine
would make a test pass that should not). Prints FILE:LINE for each finding and ends with
"coroutine lint: N files, M findings"; exits 1 on any. A heuristic reader, not a C++ parser: it
finds the bodies of functions (not lambdas) whose return type names `awaitable<`, by brace
matching over text with comments and string literals blanked; locals of nested lambdas do not
count as the function's. For the second shape it walks back from each co_await to the statement
or parenthesis that holds it.
"""
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# A local variable declaration at the start of a statement: `Type name =`, `Type name{`,
# `Type name(`, `Type name;`, `auto [a, b] =`, with optional const/static and &, * or &&.
DECLARATION = re.compile(
    r"(?:^|[;{}])\s*(?:const\s+|static\s+|constexpr\s+)*"
    r"(?:auto|[A-Za-z_][\w:]*(?:<[^;{}]*?>)?(?:::[A-Za-z_]\w*)*)\s*(?:&&|&|\*)?\s+"
    r"(?:\[[\w\s,]+\]|[a-z_]\w*)\s*(?:=|\{|\(|;)")
# A loop variable is a local too: `for (int i = 0; ...)`, `for (const auto& x : xs)`.
LOOP_DECLARATION = re.compile(
    r"\bfor\s*\(\s*(?:const\s+)?(?:auto|[A-Za-z_][\w:]*(?:<[^;{}]*?>)?)\s*(?:&&|&|\*)?\s*"
    r"(?:\[[\w\s,]+\]|[a-z_]\w*)\s*[:=;{]")
CONDITION = re.compile(r"\b(?:if|while|for)\s*\(")
COROUTINE_START = re.compile(r"awaitable<")
NOT_DECLARATIONS = ("return ", "co_return ", "co_await ", "co_yield ", "delete ", "throw ",
                    "else ", "case ", "goto ", "using ")


def blank(text):
    """Comments and string/char literals replaced by spaces (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching(text, open_at, opening, closing):
    depth = 0
    for k in range(open_at, len(text)):
        if text[k] == opening:
            depth += 1
        elif text[k] == closing:
            depth -= 1
            if depth == 0:
                return k
    return len(text) - 1


def strip_lambdas(body):
    """The body without nested lambda bodies (their locals are not the coroutine's)."""
    out, i = [], 0
    while True:
        m = re.search(r"\]\s*(?:\([^()]*(?:\([^()]*\)[^()]*)*\))?\s*(?:mutable\s*)?(?:->\s*[^{;]+)?\{", body[i:])
        if not m:
            out.append(body[i:])
            return "".join(out)
        start = i + m.end() - 1
        end = matching(body, start, "{", "}")
        out.append(body[i:start + 1])
        out.append(re.sub(r"[^\n]", " ", body[start + 1:end]))
        i = end


def coroutine_bodies(text):
    """(offset, body) of each function or lambda whose return type names awaitable<."""
    for m in COROUTINE_START.finditer(text):
        # The declaration runs from here to the first `{` or `;` at parenthesis depth 0.
        k, depth = m.end(), 0
        while k < len(text):
            c = text[k]
            if c in "(<":
                depth += 1
            elif c in ")>":
                depth -= 1
            elif c == ";" and depth <= 0:
                break
            elif c == "{" and depth <= 0:
                # A function body, unless this was a braced initializer or a return type in a
                # template argument list; require a `)` (parameter list) before it.
                # Lambdas (`[...](...) -> awaitable<T> {`) are left out: GCC compiles the same
                # shape in a lambda correctly (see the module comment).
                head = text[m.start():k]
                lambda_return = text[max(0, m.start() - 40):m.start()].rstrip().endswith(
                    ("->", "-> net::", "-> boost::asio::"))
                if ")" in head and not lambda_return and "co_" in text[k:matching(text, k, "{", "}")]:
                    yield k, text[k:matching(text, k, "{", "}") + 1]
                break
            k += 1


def findings_in(text):
    clean = blank(text)
    found = []
    for offset, body in coroutine_bodies(clean):
        own = strip_lambdas(body[1:-1])
        has_local = bool(LOOP_DECLARATION.search(own))
        for d in DECLARATION.finditer(own):
            statement = d.group(0).lstrip(";{} \n\t")
            if not statement.startswith(NOT_DECLARATIONS):
                has_local = True
                break
        if has_local:
            continue
        for c in CONDITION.finditer(own):
            open_at = c.end() - 1
            condition = own[open_at:matching(own, open_at, "(", ")") + 1]
            if "co_await" in condition:
                line = clean.count("\n", 0, offset + 1 + c.start()) + 1  # offset: the `{`
                found.append(line)
    return found


SHORT_CIRCUIT = re.compile(r"&&|\|\||\?")
NOT_CALLS = ("if", "while", "for", "switch", "return", "co_return", "co_await", "sizeof")


def short_circuit_awaits_in(text):
    """Lines where a co_await sits after &&, || or ? in a context GCC 12.2 evaluates eagerly.

    Measured with a small Asio program (-O1 and -O2): in a `co_return` expression, in a `while` or
    `for` condition and in a function call's arguments, the await runs even when the operator
    would skip it; in an `if` condition, an initialisation or an assignment it does not.
    """
    clean = blank(text)
    found = set()
    line_of = lambda at: clean.count("\n", 0, at) + 1
    # co_return statements.
    for m in re.finditer(r"\bco_return\b", clean):
        end = clean.find(";", m.end())
        statement = clean[m.end():end if end >= 0 else len(clean)]
        last = statement.rfind("co_await")
        if last >= 0 and SHORT_CIRCUIT.search(statement[:last]):
            found.add(line_of(m.start()))
    # Loop conditions, and the arguments of calls: the parenthesis group around each co_await.
    for m in re.finditer(r"\bco_await\b", clean):
        depth, k, clause = 0, m.start() - 1, None  # clause: a `;` seen (a for header's)
        while k >= 0:
            c = clean[k]
            if c == ")":
                depth += 1
            elif c == "(":
                if depth == 0:
                    break
                depth -= 1
            elif c == ";" and depth == 0:
                clause = k if clause is None else clause
            elif c in "{}" and depth == 0:
                k = -1
                break
            k -= 1
        if k < 0:
            continue
        name = re.search(r"([A-Za-z_]\w*)\s*(?:<[^()]*>)?\s*$", clean[:k])
        if name is None or name.group(1) in ("if", "switch", "return", "co_return", "co_await",
                                             "sizeof"):
            continue
        if clause is not None and name.group(1) != "for":
            continue  # the group ended before this statement began
        before = clean[(clause if clause is not None else k) + 1:m.start()]
        if SHORT_CIRCUIT.search(before):
            found.add(line_of(m.start()))
    return sorted(found)


def self_test():
    bad = """net::awaitable<bool> Job::AfterFailedTask(ItemRun& run, TaskOutcome outcome) {
  if (!co_await recorder_.Commit() || outcome == TaskOutcome::kGaveUp) co_return false;
  co_return Resubmit(run);
}
"""
    fixed = """net::awaitable<bool> Job::AfterFailedTask(ItemRun& run, TaskOutcome outcome) {
  const bool committed = co_await recorder_.Commit();
  if (!committed || outcome == TaskOutcome::kGaveUp) co_return false;
  co_return Resubmit(run);
}
"""
    with_local = """boost::asio::awaitable<bool> Acquire(Stop* stop) {
  if (closed_ || !co_await turn_.Acquire(stop)) co_return false;  // "{ not a body"
  while (true) {
    const auto now = Clock::now();
    if (now > limit_) break;
  }
  co_return true;
}
"""
    lambda_only = """void F() {
  net::co_spawn(io, [&]() -> net::awaitable<void> {
    while (!co_await Next()) Count();
  }, net::detached);
}
"""
    loop_local = """net::awaitable<bool> SpawnAll(const std::vector<int>& indexes) {
  for (int index : indexes) {
    if (!co_await slots.Acquire()) co_return false;
  }
  co_return true;
}
"""
    cases = [(bad, [2]), (fixed, []), (with_local, []), (lambda_only, []), (loop_local, [])]
    ok = True
    for text, want in cases:
        got = findings_in(text)
        if got != want:
            print(f"coroutine lint self-test: expected {want}, got {got} for:\n{text}",
                  file=sys.stderr)
            ok = False
    eager = """net::awaitable<int> F(std::optional<std::string> r, bool no) {
  auto g = [&]() -> net::awaitable<int> {
    co_return r ? co_await Use(*r) : 9;
  };
  while (no && co_await Next()) {}
  for (int i = 0; i < 9 && co_await Write(i); ++i) {}
  Record(no || co_await Ready(), 1);
  co_return no && co_await Ready();
  if (r) co_return co_await Use(*r);
  co_return co_await Ready() ? 1 : 2;  // "? co_await" in a comment
  if (no && co_await Ready()) Count();
  const bool v = no ? co_await Ready() : false;
  x = no || co_await Ready();
  if (!(no && co_await Ready())) Count();
}
"""
    got = short_circuit_awaits_in(eager)
    if got != [3, 5, 6, 7, 8]:
        print(f"coroutine lint self-test: expected [3, 5, 6, 7, 8], got {got} for:\n{eager}",
              file=sys.stderr)
        ok = False
    print("coroutine lint self-test: " + ("ok" if ok else "FAILED"))
    return ok


def main(argv):
    if argv[:1] == ["--self-test"]:
        return 0 if self_test() else 1
    files = argv
    if not files:
        for top in ("runner", "tools"):
            for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
                files += [os.path.join(dirpath, name) for name in sorted(names)
                          if name.endswith((".cc", ".h"))]
    total = 0
    for path in sorted(files):
        with open(path, encoding="utf-8", errors="replace") as source:
            text = source.read()
        for line in findings_in(text):
            print(f"{os.path.relpath(path, ROOT)}:{line}: a co_await in a condition, in a coroutine "
                  "with no local variable (GCC 12.2 miscompiles it): name the awaited result "
                  "in a local first")
            total += 1
        for line in short_circuit_awaits_in(text):
            print(f"{os.path.relpath(path, ROOT)}:{line}: a co_await after &&, || or ? in a "
                  "co_return, a loop condition or a call's arguments (GCC 12.2 runs it even when "
                  "the operator skips it): await in an if, or into a local, first")
            total += 1
    print(f"coroutine lint: {len(files)} files, {total} findings")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
