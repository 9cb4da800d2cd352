"""Small PyTorch re-statements of torchvision/timm architectures, with their state-dict key
names, used to check converted weights numerically (torchvision itself cannot be imported on
the CPU-only torch build here). Only imported when torch is installed."""
import torch
from torch import nn


def _bn(c, eps=1e-5):
    return nn.BatchNorm2d(c, eps=eps)


class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, down, **_):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.downsample = down

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))


class SE(nn.Module):
    def __init__(self, c, rd):
        super().__init__()
        self.fc1 = nn.Conv2d(c, rd, 1)
        self.fc2 = nn.Conv2d(rd, c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, down, groups=1, width_per_group=64, se=False,
                 stride_in="3x3"):
        super().__init__()
        width = int(planes * width_per_group / 64) * groups
        s1, s3 = (stride, 1) if stride_in == "1x1" else (1, stride)
        self.conv1 = nn.Conv2d(cin, width, 1, s1, bias=False)
        self.bn1 = _bn(width)
        self.conv2 = nn.Conv2d(width, width, 3, s3, 1, groups=groups, bias=False)
        self.bn2 = _bn(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = _bn(planes * 4)
        self.se = SE(planes * 4, planes * 4 // 16) if se else None
        self.downsample = down

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        if self.se is not None:
            y = self.se(y)
        return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    """torchvision.models.ResNet (and timm's SE variants with ``se=True``)."""

    def __init__(self, block, layers, ceil_pool=False, **kw):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = _bn(64)
        self.maxpool = nn.MaxPool2d(3, 2, 0, ceil_mode=True) if ceil_pool else \
            nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                down = None
                if j == 0 and (stride != 1 or cin != planes * block.expansion):
                    down = nn.Sequential(nn.Conv2d(cin, planes * block.expansion, 1, stride,
                                                   bias=False), _bn(planes * block.expansion))
                blocks.append(block(cin, planes, stride, down, **kw))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, 1000)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean((2, 3)))


def alexnet_owt():
    m = nn.Module()
    m.features = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    m.classifier = nn.Sequential(nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(),
                                 nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))
    m.forward = lambda x: m.classifier(torch.flatten(m.features(x), 1))
    return m


def vgg_features(cfg, bn):
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(cin, v, 3, padding=1))
        if bn:
            layers.append(_bn(v))
        layers.append(nn.ReLU())
        cin = v
    m = nn.Module()
    m.features = nn.Sequential(*layers)
    m.forward = lambda x: m.features(x)
    return m


class DenseLayer(nn.Module):
    def __init__(self, cin, k):
        super().__init__()
        self.norm1, self.conv1 = _bn(cin), nn.Conv2d(cin, 4 * k, 1, bias=False)
        self.norm2, self.conv2 = _bn(4 * k), nn.Conv2d(4 * k, k, 3, padding=1, bias=False)

    def forward(self, x):
        y = self.conv1(torch.relu(self.norm1(x)))
        return torch.cat([x, self.conv2(torch.relu(self.norm2(y)))], 1)


class Transition(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.norm, self.conv = _bn(cin), nn.Conv2d(cin, cin // 2, 1, bias=False)

    def forward(self, x):
        return nn.functional.avg_pool2d(self.conv(torch.relu(self.norm(x))), 2)


def densenet(k, blocks, init):
    m = nn.Module()
    f = nn.Sequential()
    f.add_module("conv0", nn.Conv2d(3, init, 7, 2, 3, bias=False))
    f.add_module("norm0", _bn(init))
    f.add_module("relu0", nn.ReLU())
    f.add_module("pool0", nn.MaxPool2d(3, 2, 1))
    c = init
    for i, n in enumerate(blocks, start=1):
        block = nn.Sequential()
        for j in range(1, n + 1):
            block.add_module(f"denselayer{j}", DenseLayer(c, k))
            c += k
        f.add_module(f"denseblock{i}", block)
        if i < len(blocks):
            f.add_module(f"transition{i}", Transition(c))
            c //= 2
    f.add_module("norm5", _bn(c))
    m.features = f
    m.classifier = nn.Linear(c, 1000)
    m.forward = lambda x: m.classifier(torch.relu(m.features(x)).mean((2, 3)))
    return m


class BasicConv(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=False)
        self.bn = _bn(cout, eps=1e-3)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, cin, n1, n3r, n3, n5r, n5, npool):
        super().__init__()
        self.branch1 = BasicConv(cin, n1, 1)
        self.branch2 = nn.Sequential(BasicConv(cin, n3r, 1), BasicConv(n3r, n3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv(cin, n5r, 1), BasicConv(n5r, n5, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                     BasicConv(cin, npool, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    """torchvision.models.GoogLeNet (aux heads built, as in its checkpoint, but unused)."""

    def __init__(self):
        super().__init__()
        self.conv1 = BasicConv(3, 64, 7, 2, 3)
        self.conv2 = BasicConv(64, 64, 1)
        self.conv3 = BasicConv(64, 192, 3, padding=1)
        spec = {"3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
                "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
                "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
                "4e": (528, 256, 160, 320, 32, 128, 128),
                "5a": (832, 256, 160, 320, 32, 128, 128),
                "5b": (832, 384, 192, 384, 48, 128, 128)}
        for name, args in spec.items():
            setattr(self, f"inception{name}", Inception(*args))
        for i, cin in ((1, 512), (2, 528)):
            aux = nn.Module()
            aux.conv, aux.fc1, aux.fc2 = BasicConv(cin, 128, 1), nn.Linear(2048, 1024), \
                nn.Linear(1024, 1000)
            setattr(self, f"aux{i}", aux)
        self.fc = nn.Linear(1024, 1000)

    def forward(self, x):
        pool = lambda t, k=3: nn.functional.max_pool2d(t, k, 2, ceil_mode=True)  # noqa: E731
        x = pool(self.conv1(x))
        x = pool(self.conv3(self.conv2(x)))
        x = pool(self.inception3b(self.inception3a(x)))
        for n in "abcde":
            x = getattr(self, f"inception4{n}")(x)
        x = pool(x, 2)
        x = self.inception5b(self.inception5a(x))
        return self.fc(x.mean((2, 3)))
