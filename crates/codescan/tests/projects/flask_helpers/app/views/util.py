def strip_all(value):
    return value.strip()


def fixed(value):
    return "ls -l"
