"""Regenerate the pack's sample data (deterministic): 40 customers and 12,000 products.

python examples/manufacturing_pack/data/make_sample_data.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
CATEGORIES = {
    "座椅面套": ("SD", 80, 420),
    "门板饰件": ("DP", 60, 300),
    "顶棚": ("HL", 150, 600),
    "地毯": ("CP", 90, 380),
    "仪表板包覆": ("IP", 200, 900),
    "方向盘套": ("SW", 30, 160),
}
MATERIALS = ["真皮", "超纤皮", "PVC", "织物", "麂皮绒", "TPO", "针织"]
MODELS = ["A级轿车", "B级轿车", "紧凑型SUV", "中型SUV", "MPV", "新能源轿车", "皮卡"]
COLORS = ["黑色", "米色", "灰色", "棕色", "红黑拼色", "象牙白"]
CITIES = ["绍兴", "杭州", "宁波", "上海", "苏州", "合肥", "武汉", "广州", "长沙", "重庆"]
REGION = {
    "绍兴": "华东",
    "杭州": "华东",
    "宁波": "华东",
    "上海": "华东",
    "苏州": "华东",
    "合肥": "华东",
    "武汉": "华中",
    "广州": "华南",
    "长沙": "华中",
    "重庆": "西南",
}


def main() -> None:
    rng = random.Random(20260118)
    with (HERE / "customers.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["code", "name", "tier", "region", "contact", "phone", "wecom_id"])
        for i in range(1, 41):
            city = rng.choice(CITIES)
            tier = rng.choices(["VIP", "A", "B", "C"], weights=[1, 3, 4, 2])[0]
            writer.writerow(
                [
                    f"C{i:05d}",
                    f"{city}{rng.choice(['汽车', '汽配', '车业'])}"
                    f"{rng.choice(['制造', '科技', '工业'])}有限公司{i}",
                    tier,
                    REGION[city],
                    f"联系人{i}",
                    f"1390575{i:04d}",
                    f"wx_c{i:05d}",
                ]
            )
    with (HERE / "products.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["code", "name", "category", "bom_link", "unit_price", "lead_days"])
        for i in range(12000):
            category = list(CATEGORIES)[i % len(CATEGORIES)]
            prefix, low, high = CATEGORIES[category]
            code = f"{prefix}-{100000 + i:06d}"
            name = f"{rng.choice(MODELS)}{rng.choice(MATERIALS)}{category}（{rng.choice(COLORS)}）"
            price = f"{rng.uniform(low, high):.2f}"
            writer.writerow(
                [code, name, category, f"https://bom.example.cn/{code}", price, rng.randint(3, 25)]
            )


if __name__ == "__main__":
    main()
