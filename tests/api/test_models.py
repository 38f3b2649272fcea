"""GET mlx/v1/models and mlx/v1/models/{id} through the official client."""

import openai
import pytest


def test_list_names_models_and_adapters(openai_client):
    ids = [m.id for m in openai_client.models.list()]
    assert {"demo", "demo:upper", "demo:pirate", "demo-chatml"} <= set(ids)
    assert all(m.object == "model" and m.owned_by == "mlx_workbench" for m in openai_client.models.list())


def test_retrieve_one(openai_client):
    model = openai_client.models.retrieve("demo:upper")
    assert model.id == "demo:upper"


def test_retrieve_unknown_is_404(openai_client):
    with pytest.raises(openai.NotFoundError) as e:
        openai_client.models.retrieve("no-such-model")
    assert e.value.body["code"] == "model_not_found"
    assert e.value.body["param"] == "model"
