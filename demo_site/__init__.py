"""demo_site — four fictional training institutions' web sites (and one hostile site for tests),
with generated ad banners, served on 127.0.0.1 for the demo, the tests and the benchmarks."""
