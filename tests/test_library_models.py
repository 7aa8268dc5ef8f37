"""Models from torchvision, timm and torch.hub: fresh modules in training mode that hold
BatchNorm/Dropout. These libraries are not installed with the fixtures (which import torch
only), so the linter is checked on source text here; what the marks claim about each library
is its documented behaviour (a new module is in training mode until ``eval()``)."""

import textwrap

from torchgradlint.engine import lint_source


def findings(source):
    return sorted((f.line, f.code) for f in lint_source(textwrap.dedent(source), "library_models.py"))


def test_library_models_are_evaluated_in_training_mode():
    source = '''
    import timm
    import torch
    import torchvision


    @torch.no_grad()
    def predict(model, images):
        return model(images).argmax(1)


    def main(images):
        resnet = torchvision.models.resnet18(weights="DEFAULT")
        print(predict(resnet, images))
        vit = timm.create_model("vit_small_patch16_224", pretrained=True)
        with torch.no_grad():
            print(vit(images).argmax(1))
        hub_model = torch.hub.load("pytorch/vision", "resnet18", weights="DEFAULT")
        with torch.no_grad():
            for batch in images.split(2):
                print(hub_model(batch).argmax(1))
        chosen = getattr(torchvision.models, "resnet50")(weights="DEFAULT")
        with torch.no_grad():
            print(chosen(images).argmax(1))
    '''
    assert findings(source) == [(9, "TGL201"), (17, "TGL201"), (21, "TGL201"), (24, "TGL201")]


def test_library_models_switched_to_eval_mode():
    source = '''
    import timm
    import torch
    import torchvision


    @torch.no_grad()
    def predict(model, images):
        model.eval()
        return model(images).argmax(1)


    def main(images):
        print(predict(torchvision.models.resnet18(weights="DEFAULT"), images))
        vit = timm.create_model("vit_small_patch16_224", pretrained=True).eval()
        hub_model = torch.hub.load("pytorch/vision", "resnet18", weights="DEFAULT")
        hub_model.eval()
        with torch.no_grad():
            print(vit(images).argmax(1), hub_model(images).argmax(1))
    '''
    assert findings(source) == []


def test_children_of_a_library_model_hold_its_batchnorm():
    source = '''
    import torch
    import torch.nn as nn
    import torchvision


    class Features(nn.Module):
        def __init__(self):
            super().__init__()
            backbone = torchvision.models.resnet18(weights="DEFAULT")
            self.body = nn.Sequential(*list(backbone.children())[:-1])

        def forward(self, x):
            return self.body(x).flatten(1)


    @torch.no_grad()
    def extract(net, loader):
        return [net(x) for x in loader]


    print(extract(Features(), [torch.randn(2, 3, 64, 64)]))
    '''
    assert findings(source) == [(19, "TGL201")]


def test_hub_entry_points_outside_pytorch_may_wrap_their_model():
    """YOLOv5's hub entry point returns ``AutoShape``, which switches to eval mode and runs
    under inference_mode itself: neither mode nor grad mode can be read off the call site. The
    ``pytorch/...`` repositories return plain modules (see the tests above)."""
    source = '''
    import torch

    model = torch.hub.load("ultralytics/yolov5", "yolov5s")
    results = model("https://ultralytics.com/images/zidane.jpg")
    results.print()
    '''
    assert findings(source) == []


def test_pytorch_fid_inception_is_built_in_training_mode():
    # pytorch-fid's own fid_score.py calls model.eval() before computing features; a feature
    # extractor that does not computes FID features with batch statistics.
    source = '''
    import torch
    from pytorch_fid.inception import InceptionV3


    class FID:
        def __init__(self):
            self.inception = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])

        @torch.no_grad()
        def features(self, images):
            return self.inception(images)[0]

        @torch.no_grad()
        def features_in_eval_mode(self, images):
            self.inception.eval()
            return self.inception(images)[0]


    def score(images):
        fid = FID()
        return fid.features(images), fid.features_in_eval_mode(images)
    '''
    assert findings(source) == [(12, "TGL201")]


DIFFUSION_TRAINING = '''
    import torch
    from diffusers.models import AutoencoderKL
    from torch.utils.data import DataLoader


    def main(dataset, denoiser):
        vae = AutoencoderKL.from_pretrained("stabilityai/sd-vae-ft-ema"){freeze}
        optimizer = torch.optim.AdamW(denoiser.parameters(), lr=1e-4)
        loader = DataLoader(dataset, batch_size=8)
        for images, labels in loader:
            latents = vae.encode(images).latent_dist.sample() * 0.18215
            loss = (denoiser(latents) - latents).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
'''


def test_a_pretrained_vae_left_trainable_receives_the_denoisers_gradients():
    """diffusers' ``from_pretrained`` loads a model; ``vae.encode(images)`` on a DataLoader's
    batch is its forward, and ``latent_dist.sample()`` is mean + std * noise (reparameterized,
    unlike a torch distribution's ``sample()``): the denoiser's backward runs into the VAE,
    which no optimizer steps."""
    found = findings(DIFFUSION_TRAINING.format(freeze=""))
    assert found == [(13, "TGL301")]


def test_a_pretrained_vae_frozen_where_it_is_loaded_records_no_graph():
    assert findings(DIFFUSION_TRAINING.format(freeze=".requires_grad_(False)")) == []


def test_generate_of_a_model_out_of_sight_sets_its_own_grad_mode():
    """Hugging Face's ``generate`` runs under ``no_grad`` itself (so do minGPT's and nanoGPT's):
    handed a tensor, it is no forward with autograd on, whether the model is loaded with
    ``from_pretrained`` or handed to a function that switches it to eval mode. A method a
    library model does not document as a forward (``get_output_embeddings``) is none either."""
    source = '''
    import torch
    from transformers import AutoModelForCausalLM


    def complete(net, prompt_ids):
        net.eval()
        return net.generate(torch.tensor([prompt_ids]), max_new_tokens=5)


    model = AutoModelForCausalLM.from_pretrained("gpt2")
    input_ids = torch.tensor([[15496, 995]])
    print(model.generate(input_ids, max_new_tokens=5).tolist())
    print(model.get_output_embeddings(input_ids))
    print(complete(model, [15496, 995]).tolist())
    '''
    assert findings(source) == []


def test_a_context_a_model_provides_is_entered_not_run():
    """peft's ``base_model_context = nullcontext if full else model.disable_adapter`` then
    ``with base_model_context():``: the call makes a context manager, it runs no forward."""
    source = '''
    from contextlib import nullcontext

    import torch


    def evaluate(model, batches, full):
        model.eval()
        base_model_context = nullcontext if full else model.disable_adapter
        with base_model_context():
            with torch.no_grad():
                return [model(batch).loss.item() for batch in batches]
    '''
    assert findings(source) == []


DETECTRON2_PREDICTOR = '''
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model


class Predictor:
    def __init__(self, cfg):
        self.model = build_model(cfg)
        checkpointer = DetectionCheckpointer(self.model)
        checkpointer.load(cfg.MODEL.WEIGHTS)
        {switch}

    def __call__(self, inputs):
        with torch.no_grad():
            return self.model([inputs])[0]


def benchmark(cfg, inputs):
    model = build_model(cfg)
    DetectionCheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS)
    {local_switch}
    with torch.no_grad():
        for batch in inputs:
            model(batch)
'''


def test_detectron2_models_are_built_in_training_mode():
    # detectron2's build_model builds the configured meta-architecture without weights, in
    # training mode (its forward then expects ground truth); DefaultPredictor calls eval().
    source = DETECTRON2_PREDICTOR.format(switch="pass", local_switch="pass")
    assert findings(source) == [(16, "TGL201"), (25, "TGL201")]


def test_detectron2_models_switched_to_eval_mode():
    source = DETECTRON2_PREDICTOR.format(switch="self.model.eval()", local_switch="model.eval()")
    assert findings(source) == []


def test_a_checkpointer_used_otherwise_may_switch_the_mode():
    # Handed to an object that does more than load weights, the model's mode is no longer the
    # one __init__ left: the linter stays silent rather than guess.
    source = DETECTRON2_PREDICTOR.format(switch="checkpointer.prepare_for_inference()", local_switch="pass")
    assert findings(source) == [(25, "TGL201")]


SAFETY_CHECK = '''
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from transformers import CLIPVisionModelWithProjection

safety_checker = StableDiffusionSafetyChecker.from_pretrained("CompVis/stable-diffusion-safety-checker")
image_encoder = CLIPVisionModelWithProjection.from_pretrained("openai/clip-vit-base-patch32")


def check_safety(images, clip_input):
    checked, has_nsfw = safety_checker(images=images, clip_input=clip_input)
    return checked.cpu().numpy(), has_nsfw


def embed(pixels):
    return image_encoder(pixels).image_embeds.cpu().numpy()


def main(images, pixels):
    print(check_safety(images, pixels), embed(pixels))
'''


def test_a_library_model_whose_forward_runs_under_no_grad():
    # diffusers' StableDiffusionSafetyChecker.forward is decorated with @torch.no_grad(): calling
    # it records no graph; a CLIP image encoder of transformers records one.
    assert findings(SAFETY_CHECK) == [(16, "TGL101")]
