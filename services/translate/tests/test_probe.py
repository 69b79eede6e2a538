from tiny_models import f

def test_a() -> None:
    assert f() == 1
