"""Helpers of a small Flask project: what each returns decides whether its result is input."""

import html

import flask


class RequestWrapper:
    def __init__(self, request: flask.Request):
        self.request = request

    def get_query(self, name: str):
        return self.request.args.get(name)

    def get_safe(self, name: str):
        return "bar"

    def get_number(self, name: str):
        return int(self.request.args.get(name, "0"))


def query_param(name):
    """Reads the request itself: its result is input even though `name` is a constant."""
    return flask.request.args.get(name)


def constant_name(value):
    return "report.txt"


def passthrough(value):
    return value


def for_html(value):
    return html.escape(value)


def items(values):
    for v in values:
        yield v
