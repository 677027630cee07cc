"""Generate tests/data/pii_corpus.jsonl: labelled PII sentences plus PII-free traps.

Seeded Faker across several locales fills templates; every slot records its type and
character offsets. Run `python tests/data/make_pii_corpus.py` and commit the output.
Rows: {"text", "entities": [{"type", "start", "end"}], "kind": "pii" | "clean"}.
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path

from faker import Faker

log = logging.getLogger(__name__)
OUT = Path(__file__).with_name("pii_corpus.jsonl")
SEED = 4
N_PII = 340
NAME_LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_BR",
                "sv_SE", "tr_TR", "en_IN", "fi_FI", "cs_CZ", "da_DK", "es_MX"]
ADDRESS_LOCALES = ["en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL"]
PLACE_LOCALES = ["de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "en_US"]

PII_TEMPLATES = [
    "Hi, I'm {PERSON} from {ORGANIZATION} in {LOCATION}, card {CREDIT_CARD}, mail {EMAIL} - "
    "how does Q-learning work?",
    "My name is {PERSON} and my email is {EMAIL}.",
    "Please call me back on {PHONE}, I'm stuck on chapter 3.",
    "You can reach me at {PHONE} or {EMAIL} if the course access fails again.",
    "I was charged twice on card {CREDIT_CARD}, can you refund one payment?",
    "My SSN is {US_SSN}, do you need it for the invoice?",
    "Transfer the refund to IBAN {IBAN} please.",
    "I can't log in from {IP_ADDRESS}, is my account blocked?",
    "Send the printed book to {STREET_ADDRESS}.",
    "My shipping address changed to {STREET_ADDRESS}, order {REFERENCE_NUMBER}.",
    "This is {PERSON}, I work at {ORGANIZATION} and we want a team licence.",
    "I work as a {JOB_TITLE} at {ORGANIZATION} in {LOCATION}.",
    "I'm based in {LOCATION} and want to know if Monte Carlo methods need a model.",
    "Thanks, {PERSON}",
    "Regards, {PERSON} ({EMAIL})",
    "Dear support, I am {PERSON}, born on {DATE_OF_BIRTH}, and I need to update my profile.",
    "Date of birth: {DATE_OF_BIRTH}, passport number {PASSPORT}.",
    "My driver's license number is {DRIVER_LICENSE}.",
    "The ticket {REFERENCE_NUMBER} is still open, please check it.",
    "Invoice {REFERENCE_NUMBER} for {ORGANIZATION} has the wrong VAT number.",
    "Contact {PERSON} at {PHONE} for the enterprise plan.",
    "Please forward this to {PERSON}, our {JOB_TITLE}.",
    "My job title is {JOB_TITLE}; I need the certificate in that name.",
    "I live in {LOCATION} and my phone is {PHONE}.",
    "We moved to {LOCATION}, the new address is {STREET_ADDRESS}.",
    "Card {CREDIT_CARD} expired, use IBAN {IBAN} instead.",
    "{PERSON} here. Is TD(λ) better than Sarsa for my project?",
    "Hello, this is {PERSON} from {LOCATION}. Why does DQN need a target network?",
    "I'm {PERSON}, my SSN {US_SSN} was on the form by mistake, please delete it.",
    "Login attempts from {IP_ADDRESS} and {IP_ADDRESS} were not mine.",
    "My colleague {PERSON} ({EMAIL}) should get the receipt.",
    "Order number {REFERENCE_NUMBER} never arrived at {STREET_ADDRESS}.",
    "I'm a {JOB_TITLE} and want to learn about Bellman equations.",
    "I'm employed by {ORGANIZATION} and my manager {PERSON} approved the purchase.",
    "Our office in {LOCATION} needs five more seats; bill {ORGANIZATION}.",
    "Passport {PASSPORT}, issued in {LOCATION}.",
    "DOB {DATE_OF_BIRTH}. Account number {REFERENCE_NUMBER}.",
    "Can you update my phone to {PHONE}? Thanks, {PERSON}",
    "Email {EMAIL} is my work address at {ORGANIZATION}.",
    "Ask for {PERSON} at the front desk, {STREET_ADDRESS}.",
    "I paid with {CREDIT_CARD} but the receipt shows another name.",
    "My wife {PERSON} and I share the account {EMAIL}.",
    "Greetings from {LOCATION}! Is PPO on-policy?",
    "{PERSON}, {JOB_TITLE} at {ORGANIZATION}",
    "Please delete everything about {PERSON}, {STREET_ADDRESS}, phone {PHONE}.",
    "Ship the hardware kit to {PERSON}, {STREET_ADDRESS}.",
    "Customer ID {REFERENCE_NUMBER}, SSN {US_SSN}, born {DATE_OF_BIRTH}.",
    "I'm travelling to {LOCATION} next week; will the course work offline?",
    "Refund to {IBAN}, account holder {PERSON}.",
    "My server at {IP_ADDRESS} keeps timing out on the API.",
]

CLEAN = [
    "How does Q-learning differ from SARSA?",
    "Can you explain the Bellman equation for the state-value function?",
    "Is a Markov decision process the same as a Markov chain with rewards?",
    "When should I use Monte Carlo methods instead of TD(0)?",
    "What is Thompson sampling and how does it compare to UCB1?",
    "Explain Bayes' rule in the context of Bayesian bandits.",
    "Does a Nash equilibrium exist in every finite two-player game?",
    "Why add Gaussian noise to actions in DDPG?",
    "What temperature should Boltzmann exploration use?",
    "How does Dyna-Q mix planning and learning?",
    "Is the Adam optimizer better than RMSProp for PPO?",
    "What does lambda control in TD(λ)?",
    "Watkins's Q(λ) cuts traces after exploratory actions, right?",
    "Sutton and Barto chapter 6 covers temporal-difference learning.",
    "I read Sutton & Barto, 2nd edition, section 13.3 on REINFORCE.",
    "Richard Bellman coined the term dynamic programming.",
    "Is Gauss-Seidel value iteration faster than the Jacobi version?",
    "Why does the Kullback-Leibler penalty matter in TRPO?",
    "The Robbins-Monro conditions require the step sizes to sum to infinity.",
    "Double Q-learning fixes the maximization bias, doesn't it?",
    "Deep Q-Network training diverges after 2 million frames.",
    "Is Expected Sarsa always better than Sarsa?",
    "What is the difference between on-policy and off-policy learning?",
    "Can Monte Carlo Tree Search be used without a simulator?",
    "Hoeffding's inequality gives the UCB bonus, correct?",
    "How do eligibility traces work with function approximation?",
    "PPO clips the ratio at 1 + epsilon; what epsilon do you recommend?",
    "Why is the discount factor usually 0.99?",
    "My agent gets a reward of -200 on MountainCar-v0 every episode.",
    "I upgraded gymnasium from 0.29.1 to 1.0.0 and the API changed.",
    "Python 3.11.7 with torch 2.3.1 gives a CUDA error 700.",
    "The course costs $49.99 per month or EUR 499 per year?",
    "Is the price 19.99 or 29.99 for the student plan?",
    "The paper at https://arxiv.org/abs/1707.06347 introduced PPO in 2017.",
    "See https://arxiv.org/pdf/1312.5602 for the original DQN paper from 2013.",
    "DOI 10.1038/nature14236 is the Nature DQN article.",
    "In 1992 Watkins and Dayan proved Q-learning converges.",
    "Between 2015 and 2018 most papers used Atari 2600 games.",
    "Run `python train.py --lr 3e-4 --gamma 0.99 --seed 42` to reproduce.",
    "The function q_values = model(state)[0] returns shape (4,).",
    "for t in range(1000): s, r, done = env.step(a)",
    "Set alpha=0.1, epsilon=0.05 and n_steps=2048 for the baseline.",
    "Table 3 lists returns of 1.23e5 after 10M steps.",
    "Chapter 4, Figure 4.2 shows policy iteration converging in 3 sweeps.",
    "Is the Bellman optimality operator a contraction in the sup norm?",
    "Why does Double DQN use the online network for argmax?",
    "Can I use a Gaussian policy with a tanh squashing function?",
    "What is Generalized Advantage Estimation with lambda 0.95?",
    "Does the Soft Actor-Critic entropy target of -dim(A) always work?",
    "I get NaN losses after step 250000 with learning rate 0.001.",
    "Version 2.0.0-rc1 broke my vectorized environments.",
    "The replay buffer holds 1,000,000 transitions of 84x84x4 frames.",
    "Does AlphaZero use Monte Carlo Tree Search at training time?",
    "Is MuZero model-based or model-free?",
    "How many episodes until CartPole-v1 reaches 500?",
    "What is a Boltzmann distribution over actions?",
    "Explain the Markov property with a simple example.",
    "Is Thompson sampling Bayes-optimal for Bernoulli bandits?",
    "The Gittins index solves discounted bandits exactly.",
    "Hessian-free optimization was used before TRPO.",
    "Fisher information matrix appears in natural policy gradient.",
    "My GPU has 24 GB and batch size 256 runs out of memory.",
    "What does the 0.2 clip range mean in PPO?",
    "Use seed 1234 and evaluate every 5000 steps.",
    "Page 131 of the book has a typo in equation 6.7.",
    "Why is the Bellman backup called a backup?",
    "Is it true that Q-learning is off-policy but Sarsa is on-policy?",
    "I'm trying to understand TD(λ) with accumulating traces.",
    "Thanks, the explanation of Dyna helped a lot!",
    "Hello, how do I cite Sutton and Barto (2018)?",
    "Can you compare A2C, A3C and PPO on MuJoCo Hopper-v4?",
    "What is the time complexity of value iteration, O(|S|^2|A|)?",
    "Why did my ε-greedy agent stop exploring at episode 300?",
    "The Adam optimizer's beta2 of 0.999 seems high for RL.",
    "Is the Gaussian process bandit the same as GP-UCB?",
    "Nash Q-learning extends Q-learning to general-sum games.",
    "In Sutton's 1988 paper TD learning was introduced.",
    "Is Barto's actor-critic from 1983 the first one?",
    "Monte Carlo returns have high variance but no bias.",
    "How does SARSA(λ) differ from Watkins's Q(λ)?",
]
TRAP_QUESTIONS = [
    "Does {algo} converge with a learning rate of {lr} and gamma {gamma}?",
    "I ran {algo} for {steps} steps on version {version} and got a return of {ret}.",
    "Is {algo} covered in chapter {chapter} or in the {year} paper?",
    "The plan costs ${price}; does it include the {algo} lectures?",
    "Error {code} when running {algo} with seed {seed}.",
]
ALGOS = ["Q-learning", "SARSA", "Expected Sarsa", "TD(λ)", "Dyna-Q", "Monte Carlo control",
         "Thompson sampling", "UCB1", "REINFORCE", "PPO", "TRPO", "DQN", "Double DQN", "A2C",
         "Soft Actor-Critic", "Bellman updates", "Boltzmann exploration", "Watkins's Q(λ)"]


def _fill(slot: str, rng: random.Random, fakers: dict[str, Faker]) -> str:
    pick = lambda locales: fakers[rng.choice(locales)]  # noqa: E731
    if slot == "PERSON":
        f = pick(NAME_LOCALES)
        return f"{f.first_name()} {f.last_name()}" if rng.random() < 0.85 else f.first_name()
    if slot == "EMAIL":
        f = pick(NAME_LOCALES[:9])
        if rng.random() < 0.3:
            user, domain = f.user_name(), f.domain_name()
            return f"{user}+{rng.choice(['rl', 'billing', 'course'])}@mail.{domain}"
        return f.email()
    if slot == "PHONE":
        f = pick(["en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "nl_NL", "es_ES", "pl_PL"])
        return re.split(r"\s?x\d+$", f.phone_number())[0]
    if slot == "CREDIT_CARD":
        kind = rng.choice(["visa16", "mastercard", "amex", "discover"])
        digits = fakers["en_US"].credit_card_number(kind)
        sep = rng.choice([" ", "-", ""])
        groups = [digits[:4], digits[4:10], digits[10:]] if kind == "amex" else [
            digits[i:i + 4] for i in range(0, len(digits), 4)]
        return sep.join(groups)
    if slot == "US_SSN":
        return fakers["en_US"].ssn()
    if slot == "IBAN":
        iban = pick(["de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_GB"]).iban()
        if rng.random() < 0.5:
            return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
        return iban
    if slot == "IP_ADDRESS":
        f = fakers["en_US"]
        return f.ipv6() if rng.random() < 0.2 else f.ipv4_public()
    if slot == "STREET_ADDRESS":
        return _address(rng, fakers)
    if slot == "LOCATION":
        f = pick(PLACE_LOCALES)
        return f.city() if rng.random() < 0.8 else rng.choice(
            ["Germany", "France", "Spain", "Italy", "Poland", "Portugal", "Canada", "Japan",
             "Brazil", "India", "Kenya", "Mexico", "the Netherlands", "Sweden", "Ireland"])
    if slot == "ORGANIZATION":
        return pick(["en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL"]).company()
    if slot == "JOB_TITLE":
        while True:
            job = fakers["en_US"].job()
            if "," not in job and "(" not in job:
                return job.lower() if rng.random() < 0.6 else job
    if slot == "DATE_OF_BIRTH":
        day = fakers["en_US"].date_of_birth(minimum_age=18, maximum_age=80)
        return day.strftime(rng.choice(["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y",
                                        "%B %d, %Y", "%d %B %Y"]))
    if slot == "PASSPORT":
        return fakers[rng.choice(["en_US", "de_DE", "fr_FR", "it_IT"])].passport_number()
    if slot == "DRIVER_LICENSE":
        return rng.choice("ABCDEFGHJKLMNPRSTW") + "".join(
            rng.choice("0123456789") for _ in range(rng.choice([7, 8, 12])))
    if slot == "REFERENCE_NUMBER":
        return rng.choice([
            f"ORD-{rng.randint(2019, 2025)}-{rng.randint(10000, 999999)}",
            f"{rng.randint(100000, 99999999)}",
            f"INV{rng.randint(1000, 99999)}",
            f"TCK-{rng.randint(1000, 999999)}",
            f"A{rng.randint(10, 99)}-{rng.randint(10000, 99999)}"])
    raise ValueError(f"unknown slot {slot!r} in a template; add a filler for it")


def _address(rng: random.Random, fakers: dict[str, Faker]) -> str:
    locale = rng.choice(ADDRESS_LOCALES)
    f = fakers[locale]
    street = ""
    while not re.search(r"\d", street):  # real postal addresses carry a house number
        street = f.street_address().replace("\n", ", ")
    if rng.random() < 0.5:
        return street
    if locale == "en_US":
        return f"{street}, {f.city()}, {f.state_abbr()} {f.postcode()}"
    return f"{street}, {f.postcode()} {f.city()}"


def _render(template: str, rng: random.Random, fakers: dict[str, Faker]) -> dict:
    text, entities, pos = "", [], 0
    for match in re.finditer(r"\{([A-Z_]+)\}", template):
        text += template[pos:match.start()]
        value = _fill(match.group(1), rng, fakers)
        entities.append({"type": match.group(1), "start": len(text),
                         "end": len(text) + len(value)})
        text += value
        pos = match.end()
    return {"text": text + template[pos:], "entities": entities, "kind": "pii"}


def _clean_rows(rng: random.Random) -> list[dict]:
    rows = [{"text": t, "entities": [], "kind": "clean"} for t in CLEAN]
    while len(rows) < 130:
        template = rng.choice(TRAP_QUESTIONS)
        text = template.format(
            algo=rng.choice(ALGOS), lr=rng.choice(["0.1", "3e-4", "1e-3", "0.05"]),
            gamma=rng.choice(["0.9", "0.99", "0.999"]), steps=rng.choice(["1M", "500000", "2e6"]),
            version=rng.choice(["1.0.0", "0.29.1", "2.3.1", "3.11.7"]), ret=rng.randint(-500, 500),
            chapter=rng.randint(2, 13), year=rng.randint(1988, 2024),
            price=rng.choice(["9.99", "49", "199.00", "1,299.00"]),
            code=rng.choice(["700", "E1102", "0x7f", "404"]), seed=rng.randint(0, 9999))
        rows.append({"text": text, "entities": [], "kind": "clean"})
    return rows


def build_corpus(seed: int = SEED, n_pii: int = N_PII) -> list[dict]:
    """Labelled PII rows (cycling through the templates) followed by PII-free trap rows."""
    rng = random.Random(seed)
    Faker.seed(seed)
    fakers = {loc: Faker(loc) for loc in set(NAME_LOCALES + ADDRESS_LOCALES + PLACE_LOCALES)}
    for i, f in enumerate(sorted(fakers)):
        fakers[f].seed_instance(seed * 100 + i)
    rows = [_render(PII_TEMPLATES[i % len(PII_TEMPLATES)], rng, fakers) for i in range(n_pii)]
    return rows + _clean_rows(rng)


def main() -> None:
    """Write the corpus next to this script."""
    logging.basicConfig(level=logging.INFO)
    rows = build_corpus()
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    log.info("wrote %d rows (%d pii, %d clean) to %s", len(rows),
             sum(r["kind"] == "pii" for r in rows), sum(r["kind"] == "clean" for r in rows), OUT)


if __name__ == "__main__":
    main()
