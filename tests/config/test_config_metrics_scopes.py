"""The Monitoring settings of [usage]: metrics scopes (a list of project ids) and the read budget."""

from keyward.config import load_config


def test_metrics_scopes_when_valid_are_kept_in_order(write, env):
    config = load_config(write('[usage]\nmetrics_scopes = ["watch-tower", "watch-tower-2"]\n'), env=env)
    assert config.usage.metrics_scopes == ("watch-tower", "watch-tower-2")
    assert config.usage.monitoring_reads_per_minute == 6000


def test_metrics_scopes_default_to_none(write, env):
    assert load_config(write(""), env=env).usage.metrics_scopes == ()


def test_metrics_scopes_when_an_entry_is_bad_names_it_by_position(find, problems_of):
    file, problems = problems_of('[usage]\nmetrics_scopes = ["watch-tower", "Bad_Id", 7, "watch-tower"]\n')
    find(problems, file, 2, "usage.metrics_scopes[1]", "'Bad_Id' is not valid: a Google Cloud project id")
    find(problems, file, 2, "usage.metrics_scopes[2]", "expected a string, got the number 7")
    find(problems, file, 2, "usage.metrics_scopes[3]", "'watch-tower' is listed twice")


def test_metrics_scopes_when_not_a_list_says_so(find, problems_of):
    file, problems = problems_of('[usage]\nmetrics_scopes = "watch-tower"\n')
    find(problems, file, 2, "usage.metrics_scopes", "expected a list of strings")


def test_monitoring_reads_per_minute_when_zero_says_the_range(find, problems_of):
    file, problems = problems_of("[usage]\nmonitoring_reads_per_minute = 0\n")
    find(problems, file, 2, "usage.monitoring_reads_per_minute", "must be between 1 and 1000000, got 0")
