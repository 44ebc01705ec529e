"""ImageNet-pretrained backbones whose weights ship inside installed packages."""
