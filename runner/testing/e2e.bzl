"""End-to-end tests: the real nanobatch binary against the simulator over TLS on loopback."""

def nanobatch_e2e_test(name, srcs, deps = [], data = []):
    """A large cc_test with the runner and the simulator as data, and the shared test helpers."""
    native.cc_test(
        name = name,
        size = "large",
        srcs = srcs,
        data = data + [
            "//runner:nanobatch",
            "//tools/fake_api:simulator_runtime",
        ],
        deps = deps + [
            "//runner/testing:fake_api_process",
            "//runner/testing:local_sockets",
            "//runner/testing:runner_job",
            "//runner/testing:subprocess",
            "//runner/testing:temp_dir",
            "//third_party:boost_json",
            "//third_party:doctest_main",
        ],
    )
