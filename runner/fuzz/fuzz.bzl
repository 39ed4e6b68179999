"""One fuzz target, three ways: a library with LLVMFuzzerTestOneInput, a test that replays its
corpus (testdata/fuzz/NAME: seeds and every crash found) with the regular build, and a libFuzzer
binary built only with --config=fuzz (clang; tools/fuzz.sh)."""

def nanobatch_fuzz_target(name, srcs, deps = []):
    native.cc_library(
        name = name + "_target",
        srcs = srcs,
        deps = deps,
        alwayslink = True,
    )
    native.cc_test(
        name = name + "_corpus_test",
        srcs = ["corpus_replay_main.cc"],
        local_defines = ["NANOBATCH_FUZZ_CORPUS=\\\"testdata/fuzz/%s\\\"" % name],
        data = ["//testdata/fuzz:" + name],
        deps = [
            ":" + name + "_target",
            "//third_party:doctest_main",
        ],
    )
    native.cc_binary(
        name = name + "_fuzzer",
        linkopts = ["-fsanitize=fuzzer"],
        tags = ["manual"],
        deps = [":" + name + "_target"],
    )
