"""One module per family; every public builder has the keras.applications signature.

Each family module registers its variants where it defines them (``_zoo.register``,
``_common.variant``) and lists its public builders in its ``__all__``; importing the families
fills the registry."""
from . import alexnet, densenet, googlenet, resnet, vgg
from .alexnet import *  # noqa: F401,F403
from .densenet import *  # noqa: F401,F403
from .googlenet import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .vgg import *  # noqa: F401,F403

FAMILIES = (alexnet, vgg, googlenet, resnet, densenet)
__all__ = [name for family in FAMILIES for name in family.__all__]
